"""No worker outlives its supervisor: a `runworker` killed with SIGKILL (which reaches
only its own process group; every worker sits in a session of its own) leaves no worker,
workload child or framework process running a few seconds later."""

import signal
import time

import psutil
import pytest

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from tests.conftest import wait_for

GONE_WITHIN_S = 8.0


def _descendants(pid: int, at_least: int) -> list[psutil.Process] | None:
    procs = psutil.Process(pid).children(recursive=True)
    return procs if len(procs) >= at_least else None


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever adopts it to reap it)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[str]:
    """The command lines of those still running after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (alive := [p for p in procs if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [f"{p.pid} {' '.join(p.cmdline())} (parent {p.ppid()})" for p in alive]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("alias", ["db", "dramatiq"])
def test_a_killed_runworker_leaves_no_process_behind(alias, start_worker):
    worker = start_worker(alias, workers=2)
    # db: 2 workers and their workload children; dramatiq: its CLI and 2 workers
    wait_for(lambda: _descendants(worker.proc.pid, 3), 60, message="worker processes")
    job = services.job_create(version="api", backend=alias, document="d", workload="sleep:60")
    wait_for(
        lambda: OcrJob.objects.get(id=job.id).status == JobStatus.RUNNING,
        60,
        message=worker.output,
    )
    procs = psutil.Process(worker.proc.pid).children(recursive=True)  # with the job's
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait()
    alive = wait_gone(procs, GONE_WITHIN_S)
    assert not alive, f"left behind: {alive}"
    job = OcrJob.objects.get(id=job.id)
    assert job.status == JobStatus.RUNNING  # abandoned: its lease runs out, the relay resends
