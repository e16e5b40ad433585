"""Fixtures on real services: the test database, real brokers, real worker processes.

Worker processes are started as `manage.py runworker` subprocesses against the test
database, so tests that use them need `@pytest.mark.django_db(transaction=True)`.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# Before Django reads settings: private queue names, short leases, a quick relay.
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("OCRLAB_QUEUE_PREFIX", f"test{os.getpid()}")
os.environ.setdefault("JOB_LEASE_S", "3")
os.environ.setdefault("RELAY_INTERVAL_S", "0.5")
os.environ.setdefault("RELAY_PENDING_GRACE_S", "1")
os.environ.setdefault("JOB_MAX_ATTEMPTS", "2")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture
def subprocess_env(settings):
    """Environment for child processes: same test database and queue names as the test."""
    from django.db import connection

    name = connection.settings_dict["NAME"]
    url = settings.DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"
    return {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen, log: Path):
        self.proc, self.log = proc, log

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_worker(subprocess_env, tmp_path):
    """start_worker("redis", workers=2, workload=None) -> WorkerProcess (stopped at teardown)."""
    started: list[WorkerProcess] = []

    def start(backend: str, workers: int = 1, workload: str | None = None, env=None):
        cmd = [sys.executable, "manage.py", "runworker", "--backend", backend,
               "--workers", str(workers)]
        if workload:
            cmd += ["--workload", workload]
        log = tmp_path / f"worker-{backend}-{len(started)}.log"
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**subprocess_env, **(env or {})},
                                stdout=log.open("w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        started.append(WorkerProcess(proc, log))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()
        if os.getenv("OCRLAB_SHOW_WORKER_LOGS"):
            print(worker.output())
