"""Run N worker processes for a plain adapter; restart any that dies; stop them cleanly.

Children are started with `spawn` (no inherited broker sockets or client threads) in a
process group of their own, so a Ctrl-C in the terminal reaches only the supervisor,
which then asks each child to stop after its current job (SIGTERM).
"""

import logging
import multiprocessing
import os
import signal
import threading
import time

from django.conf import settings

log = logging.getLogger("tasks.supervisor")
RESTART_DELAY_S = 1.0
STOP_GRACE_S = 10.0  # on top of the job time limit


def worker_main(alias: str, index: int) -> None:
    """Entry point of one worker process: consume one job at a time until told to stop."""
    os.setpgid(0, 0)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    import django

    django.setup()
    from apps.jobs.services import worker_name
    from tasks.backends.registry import get_backend
    from tasks.process import process_job

    name = worker_name()
    log.info("worker %d (%s) consuming %s", index, name, alias)

    def handle(job_id, claimed=None) -> str:
        return process_job(job_id, worker=name, claimed=claimed)

    backend = get_backend(alias)
    try:
        backend.consume(handle, stop=stop)
    finally:
        backend.close()
    log.info("worker %d (%s) stopped", index, name)


class Supervisor:
    def __init__(self, alias: str, count: int):
        self.alias, self.count = alias, count
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: dict[int, multiprocessing.Process] = {}

    def run(self, stop: threading.Event) -> None:
        for index in range(self.count):
            self._start(index)
        while not stop.wait(0.5):
            self._restart_dead()
        self._stop_all()

    def _start(self, index: int) -> None:
        proc = self.ctx.Process(target=worker_main, args=(self.alias, index),
                                name=f"ocrlab-{self.alias}-{index}")
        proc.start()
        self.procs[index] = proc

    def _restart_dead(self) -> None:
        for index, proc in list(self.procs.items()):
            if not proc.is_alive():
                log.warning("worker %d (pid %s) exited with %s; restarting", index, proc.pid,
                            proc.exitcode)
                time.sleep(RESTART_DELAY_S)
                self._start(index)

    def _stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + settings.JOB_TIME_LIMIT_S + STOP_GRACE_S
        for proc in self.procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.error("worker pid %s did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.join()
