"""One worker process of a plain adapter: consume one job at a time until told to stop.

The supervisor (tasks/supervisor.py) runs `python -m tasks.worker ALIAS INDEX` in a
session of its own. Django is set up before the models are imported (a process entry
point, like wsgi.py). A worker never outlives its supervisor, even one killed by SIGKILL
(which reaches only the supervisor's own group): the kernel signals it when the parent
dies (PR_SET_PDEATHSIG, Linux), and it then kills its workload child and exits at once;
the job it held comes back through its lease (the relay) and its message is redelivered.
"""

import ctypes
import logging
import os
import signal
import sys
import threading

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
django.setup()

from apps.jobs.services import worker_name  # noqa: E402
from tasks import child as children  # noqa: E402
from tasks import scratch  # noqa: E402
from tasks.backends.registry import get_backend  # noqa: E402
from tasks.consume import consume_loop, handle_message  # noqa: E402
from tasks.limits import prestart  # noqa: E402
from tasks.supervisor import PARENT_DEATH_SIGNAL, PARENT_PID_ENV, PR_SET_PDEATHSIG  # noqa: E402

log = logging.getLogger("tasks.worker")
PARENT_GONE_EXIT = 3  # the exit status of a worker whose supervisor died


def exit_with_supervisor() -> None:
    """Ask the kernel for PARENT_DEATH_SIGNAL when the supervisor (OCRLAB_PARENT_PID)
    dies; exit at once if it is already gone. Linux only; a no-op elsewhere."""
    parent = os.environ.get(PARENT_PID_ENV)
    if parent is None or not sys.platform.startswith("linux"):
        return
    signal.signal(PARENT_DEATH_SIGNAL, _supervisor_gone)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0)
    if os.getppid() != int(parent):  # it died before prctl took effect
        _supervisor_gone(PARENT_DEATH_SIGNAL, None)


def _supervisor_gone(signum, frame) -> None:
    """No one supervises this worker any more: kill the workload (its whole group, so
    Tesseract and Ghostscript too) and exit without storing; the lease does the rest."""
    log.error("supervisor gone: worker pid %s exits, abandoning its job", os.getpid())
    children.current().kill()
    scratch.remove_mine()
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

    def handle(job_id, claimed=None) -> str:
        return handle_message(job_id, worker=name, claimed=claimed)

    backend = get_backend(alias)
    try:
        consume_loop(backend.open_consumer(name), handle, stop=stop)
    finally:
        backend.close()
        scratch.remove_mine()
    log.info("worker %d (%s) stopped", index, name)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
