"""One worker process of a plain adapter: consume one job at a time until told to stop.

The supervisor (tasks/supervisor.py) runs `OCRLAB_BACKEND=ALIAS python -m tasks.worker
INDEX` in a session of its own (every worker type learns its alias from that variable).
Django is set up before the models are imported (a process entry point, like wsgi.py).
A worker never outlives its supervisor, even one killed by SIGKILL (which reaches only
the supervisor's own group): the kernel signals it when the parent dies
(PR_SET_PDEATHSIG, Linux) and a watchdog thread checks the parent every second; either
way it kills its workload child's process group and exits at once; the job it held
comes back through its lease (the relay) and its message is redelivered.
"""

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
django.setup()

from apps.jobs.services import worker_name  # noqa: E402
from tasks import child as children  # noqa: E402
from tasks import scratch  # noqa: E402
from tasks.backends.base import Message, worker_alias  # noqa: E402
from tasks.backends.registry import get_backend  # noqa: E402
from tasks.consume import consume_loop, handle_message  # noqa: E402
from tasks.heartbeat import heartbeat_start  # noqa: E402
from tasks.limits import prestart  # noqa: E402
from tasks.supervisor import PARENT_DEATH_SIGNAL, PARENT_PID_ENV, PR_SET_PDEATHSIG  # noqa: E402

log = logging.getLogger("tasks.worker")
PARENT_GONE_EXIT = 3  # the exit status of a worker whose supervisor died
PARENT_CHECK_S = 1.0


def exit_with_supervisor() -> None:
    """Exit at once when the supervisor (OCRLAB_PARENT_PID) dies: the kernel sends
    PARENT_DEATH_SIGNAL (Linux), and a watchdog thread checks the parent every
    PARENT_CHECK_S in case the signal's handler cannot run (main thread inside C code)."""
    parent = os.environ.get(PARENT_PID_ENV)
    if parent is None:
        return
    workload = children.current()  # the main thread's: the watchdog has none of its own
    if sys.platform.startswith("linux"):
        signal.signal(PARENT_DEATH_SIGNAL, lambda *_: _supervisor_gone(workload))
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0)
    watchdog = threading.Thread(
        target=_watch_parent, args=(int(parent), workload), name="parent-watch", daemon=True
    )
    watchdog.start()


def _watch_parent(parent: int, workload: children.WorkloadProcess) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    _supervisor_gone(workload)


def _supervisor_gone(workload: children.WorkloadProcess) -> None:
    """No one supervises this worker any more: kill the workload (its whole group, so
    Tesseract and Ghostscript too) and exit without storing; the lease does the rest.
    No logging or waiting here: it may run in a signal handler, under any lock."""
    try:
        os.write(2, f"worker pid {os.getpid()}: supervisor gone; job abandoned\n".encode())
        child = workload.proc
        if child is not None:
            with contextlib.suppress(OSError):
                os.killpg(child.pid, signal.SIGKILL)
        scratch.remove_mine()
    finally:
        os._exit(PARENT_GONE_EXIT)


def main(alias: str, index: int) -> None:
    """Consume `alias` until SIGTERM or SIGINT, then finish the current job and stop."""
    exit_with_supervisor()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    name = worker_name()
    scratch.sweep_dead()  # what killed workers left behind
    log.info("worker %d (%s) consuming %s", index, name, alias)
    prestart()  # the workload's child process starts while the consumer connects

    def handle(message: Message) -> str:
        return handle_message(message.job_id, worker=name, claimed=message.claimed)

    backend = get_backend(alias)
    beat = heartbeat_start(worker=name, backend=alias, stop=stop)
    try:
        consume_loop(backend.open_consumer(name), handle, stop=stop)
    finally:
        stop.set()
        backend.close()
        beat.join(timeout=5)
        scratch.remove_mine()
    log.info("worker %d (%s) stopped", index, name)


if __name__ == "__main__":
    main(worker_alias(), int(sys.argv[1]))
