"""Run N worker processes for a plain adapter; restart any that dies; stop them cleanly.

Children are started with `spawn` (no inherited broker sockets or client threads) in a
process group of their own, so a Ctrl-C in the terminal reaches only the supervisor,
which then asks each child to stop after its current job (SIGTERM).
"""

import ctypes
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

from django.conf import settings

from apps.ops import launch
from tasks.backends.base import Backend

log = logging.getLogger("tasks.supervisor")
RESTART_DELAY_S = 1.0
STOP_GRACE_S = 10.0  # on top of the job time limit
# For framework worker commands (Celery, Dramatiq) run by CommandWorkers:
PARENT_PID_ENV = "OCRLAB_PARENT_PID"  # set for a command started by CommandWorkers
RESTART_MAX_DELAY_S = 30.0
HEALTHY_AFTER_S = 60.0  # a command that ran this long restarts after RESTART_DELAY_S
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_DEATH_SIGNAL = getattr(signal, "SIGRTMIN", 34) + 1  # used by neither framework


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
    from tasks.consume import consume_loop, handle_message
    from tasks.limits import prestart

    name = worker_name()
    log.info("worker %d (%s) consuming %s", index, name, alias)
    prestart()  # the workload's child process starts while the consumer connects

    def handle(job_id, claimed=None) -> str:
        return handle_message(job_id, worker=name, claimed=claimed)

    backend = get_backend(alias)
    try:
        consume_loop(backend.open_consumer(name), handle, stop=stop)
    finally:
        backend.close()
    log.info("worker %d (%s) stopped", index, name)


def run_workers(backend: Backend, count: int, *, stop: threading.Event) -> None:
    """Serve `backend` with `count` job slots until `stop` is set: a framework's own
    worker command (restarted when it dies), or `count` processes of the consume loop."""
    command = backend.worker_command(count)
    if command is None:
        Supervisor(backend.alias, count).run(stop)
    else:
        CommandWorkers(command.name, command.argv, command.env, command.stop_timeout_s).run(stop)


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
        proc = self.ctx.Process(
            target=worker_main, args=(self.alias, index), name=f"ocrlab-{self.alias}-{index}"
        )
        proc.start()
        self.procs[index] = proc

    def _restart_dead(self) -> None:
        for index, proc in list(self.procs.items()):
            if not proc.is_alive():
                log.warning(
                    "worker %d (pid %s) exited with %s; restarting", index, proc.pid, proc.exitcode
                )
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


class CommandWorkers:
    """Run a framework's worker command in a process group of its own; restart it when
    it exits by itself; on stop, SIGTERM it (warm shutdown: current jobs finish)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], stop_timeout_s: float):
        self.name, self.cmd, self.stop_timeout_s = name, cmd, stop_timeout_s
        self.env = {**os.environ, **env, PARENT_PID_ENV: str(os.getpid())}

    def run(self, stop: threading.Event) -> None:
        """Keep the command running until `stop` is set, then stop it and its children.
        A command that keeps dying at once is restarted less and less often."""
        proc, started, delay_s = self._start(), time.monotonic(), RESTART_DELAY_S
        while not stop.wait(0.5):
            if proc.poll() is None:
                continue
            if time.monotonic() - started > HEALTHY_AFTER_S:
                delay_s = RESTART_DELAY_S
            log.warning(
                "%s (pid %s) exited with %s; restarting in %.0fs",
                self.name,
                proc.pid,
                proc.returncode,
                delay_s,
            )
            launch.signal_group(proc.pid, signal.SIGTERM)  # children it may have left behind
            if stop.wait(delay_s):
                return
            proc, started = self._start(), time.monotonic()
            delay_s = min(2 * delay_s, RESTART_MAX_DELAY_S)
        self._stop(proc)

    def _start(self) -> subprocess.Popen:
        # A session of its own: a Ctrl-C in the terminal reaches only runworker, which
        # then sends one SIGTERM (a second signal means "kill now" to both frameworks).
        proc = launch.start(self.cmd, env=self.env)
        log.info("%s started: pid %s: %s", self.name, proc.pid, " ".join(self.cmd))
        return proc

    def _stop(self, proc: subprocess.Popen) -> None:
        """One SIGTERM to the command (warm shutdown), then SIGKILL its whole group after
        stop_timeout_s (or at once if it stopped): nothing may outlive runworker."""
        if not launch.stop_group(proc, timeout_s=self.stop_timeout_s, leader_only=True):
            log.error("%s did not stop in %.0fs; killed it", self.name, self.stop_timeout_s)
        log.info("%s stopped (exit %s)", self.name, proc.returncode)


def die_with_parent() -> None:
    """In a command started by CommandWorkers: SIGTERM (warm shutdown) when runworker
    dies, even by SIGKILL, so no worker outlives it. Linux only; a no-op elsewhere.

    The kernel sends the parent-death signal once per thread of the dying parent (the
    child is handed from thread to thread), and a second SIGTERM means "kill now" to
    Dramatiq: so a private signal is asked for, and it forwards SIGTERM once."""
    parent = os.environ.get(PARENT_PID_ENV)
    if (
        parent != str(os.getppid())
        or not sys.platform.startswith("linux")
        or threading.current_thread() is not threading.main_thread()
    ):
        return
    forwarded = threading.Event()

    def forward(signum, frame) -> None:
        if not forwarded.is_set():
            forwarded.set()
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(PARENT_DEATH_SIGNAL, forward)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0)
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        forward(PARENT_DEATH_SIGNAL, None)
