"""Run N worker processes for a plain adapter; restart any that dies; stop them cleanly.

Children are fresh interpreters (`python -m tasks.worker`: no inherited broker sockets
or client threads), each in a session of its own, so a Ctrl-C in the terminal reaches
only the supervisor, which then asks each child to stop after its current job (SIGTERM).
"""

import ctypes
import logging
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
WORKER_MODULE = "tasks.worker"  # one consume-loop process: python -m tasks.worker INDEX
RESTART_DELAY_S = 1.0
STOP_GRACE_S = 10.0  # on top of the job time limit
PARENT_PID_ENV = "OCRLAB_PARENT_PID"  # set for every worker process or command we start
# For framework worker commands (Celery, Dramatiq) run by CommandWorkers:
RESTART_MAX_DELAY_S = 30.0
HEALTHY_AFTER_S = 60.0  # a command that ran this long restarts after RESTART_DELAY_S
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_DEATH_SIGNAL = getattr(signal, "SIGRTMIN", 34) + 1  # used by neither framework


def run_workers(backend: Backend, count: int, *, stop: threading.Event) -> None:
    """Serve `backend` with `count` job slots until `stop` is set: a framework's own
    worker command (restarted when it dies), or `count` processes of the consume loop."""
    command = backend.worker_command(count)
    if command is None:
        Supervisor(backend, count).run(stop)
    else:
        CommandWorkers(command.name, command.argv, command.env, command.stop_timeout_s).run(stop)


class Supervisor:
    """`count` processes of the consume loop (`python -m tasks.worker INDEX`, the alias
    in the environment like every worker's: Backend.worker_env)."""

    def __init__(self, backend: Backend, count: int):
        self.count = count
        self.env = {**os.environ, **backend.worker_env()}
        self.procs: dict[int, subprocess.Popen] = {}

    def run(self, stop: threading.Event) -> None:
        for index in range(self.count):
            self._start(index)
        while not stop.wait(0.5):
            self._restart_dead()
        self._stop_all()

    def _start(self, index: int) -> None:
        # A session of its own: a Ctrl-C in the terminal reaches only the supervisor.
        argv = [sys.executable, "-m", WORKER_MODULE, str(index)]
        env = {**self.env, PARENT_PID_ENV: str(os.getpid())}  # it dies with us (worker.py)
        self.procs[index] = launch.start(argv, env=env)

    def _restart_dead(self) -> None:
        for index, proc in list(self.procs.items()):
            if proc.poll() is not None:
                code = proc.returncode
                log.warning("worker %d (pid %s) exited with %s; restarting", index, proc.pid, code)
                time.sleep(RESTART_DELAY_S)
                self._start(index)

    def _stop_all(self) -> None:
        """SIGTERM each worker (it finishes its current job), then SIGKILL what is left."""
        procs = list(self.procs.values())
        timeout_s = settings.JOB_TIME_LIMIT_S + STOP_GRACE_S
        in_time = launch.stop_groups(procs, timeout_s=timeout_s, leader_only=True)
        for proc, stopped in zip(procs, in_time, strict=True):
            if not stopped:
                log.error("worker pid %s did not stop in %.0fs; killed it", proc.pid, timeout_s)


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
    """In a command started by CommandWorkers: when runworker dies, even by SIGKILL, kill
    the command's whole process group at once, so no worker outlives it (unsupervised, a
    warm shutdown could run a job for minutes). Their jobs come back through the lease
    and the broker redelivers their unacked messages; each workload child dies with its
    worker (its own PR_SET_PDEATHSIG). Linux only; a no-op elsewhere.

    The kernel sends the parent-death signal once per thread of the dying parent (the
    child is handed from thread to thread): a private signal is asked for, handled once."""
    parent = os.environ.get(PARENT_PID_ENV)
    if (
        parent != str(os.getppid())
        or not sys.platform.startswith("linux")
        or threading.current_thread() is not threading.main_thread()
    ):
        return
    signal.signal(PARENT_DEATH_SIGNAL, _kill_own_group)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0)
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        _kill_own_group(PARENT_DEATH_SIGNAL, None)


def _kill_own_group(signum, frame) -> None:
    log.error("runworker gone: killing worker command group %s", os.getpgrp())
    os.killpg(os.getpgrp(), signal.SIGKILL)
