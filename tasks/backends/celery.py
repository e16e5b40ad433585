"""Celery backends: `rabbit` (V5, RabbitMQ) and `celery-redis` (Redis), one task for both.

Each alias owns its own Celery app (ocrproject.celery.make_app), so one process can
publish to both. Workers are Celery's own: `run_workers` starts the `celery worker`
command (prefork pool, one process per job slot) as a subprocess and restarts it if it
dies. The same command, for users who want Celery's CLI directly:

    OCRLAB_CELERY_BACKEND=rabbit .venv/bin/celery -A ocrproject worker --pool prefork \
        --concurrency 2 -Q ocrlab.rabbit --without-gossip --without-mingle \
        --without-heartbeat -O fair --loglevel INFO

`CommandWorkers` (run a framework's worker command, restart it, stop it warmly) also
serves the Dramatiq backend.
"""

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from uuid import UUID

from django.conf import settings

from tasks.backends.base import Backend, BackendUnavailable, Handler, require

log = logging.getLogger(__name__)
PARENT_PID_ENV = "OCRLAB_PARENT_PID"  # set for a command started by CommandWorkers
RESTART_DELAY_S = 1.0
RESTART_MAX_DELAY_S = 30.0
HEALTHY_AFTER_S = 60.0  # a command that ran this long restarts after RESTART_DELAY_S
STOP_GRACE_S = 30.0  # on top of the job time limit and the framework's own margin
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_DEATH_SIGNAL = getattr(signal, "SIGRTMIN", 34) + 1  # used by neither framework


class CeleryBackend(Backend):
    """Publish `ocrlab.process_job(job_id)` to this alias's queue; run Celery workers."""

    def __init__(self, alias: str, options: dict | None = None, version: str = "api"):
        super().__init__(alias, options, version)
        self._app = None
        self._lock = threading.Lock()

    @property
    def app(self):
        """This alias's Celery app, built on first use from OPTIONS["url"]."""
        with self._lock:
            if self._app is None:
                require("celery", "celery")
                from ocrproject.celery import make_app

                self._app = make_app(self.alias, self.options["url"])
            return self._app

    @property
    def queue(self) -> str:
        return f"{settings.QUEUE_PREFIX}.{self.alias}"

    def publish(self, job_id: UUID) -> None:
        """Send the task once, without Celery's publish retries: a dead broker raises
        within broker_connection_timeout, and the job stays PENDING for the relay."""
        from kombu.exceptions import OperationalError

        from ocrproject.celery import TASK_NAME

        try:
            self.app.send_task(TASK_NAME, args=[str(job_id)], queue=self.queue, retry=False)
        except (OperationalError, OSError) as exc:
            raise BackendUnavailable(f"{self.alias}: cannot publish: {exc}") from exc

    def consume(self, handle: Handler, *, stop: threading.Event) -> None:
        raise NotImplementedError("Celery consumes in its own worker: use run_workers")

    def purge(self) -> None:
        """Drop the waiting messages of this alias's queue (declared first if missing)."""
        app = self.app
        with app.connection_for_write() as conn:
            queue = app.amqp.queues[self.queue](conn.default_channel)
            queue.declare()
            queue.purge()

    def run_workers(self, count: int, *, stop: threading.Event) -> None:
        """Run `celery worker` with `count` prefork processes until `stop` is set."""
        from ocrproject.celery import ALIAS_ENV, HARD_LIMIT_MARGIN_S, worker_command

        stop_timeout_s = settings.JOB_TIME_LIMIT_S + HARD_LIMIT_MARGIN_S + STOP_GRACE_S
        cmd = worker_command(self.alias, count)
        env = {ALIAS_ENV: self.alias}
        CommandWorkers(f"celery[{self.alias}]", cmd, env, stop_timeout_s).run(stop)

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None


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
            _signal_group(proc.pid, signal.SIGTERM)  # children it may have left behind
            if stop.wait(delay_s):
                return
            proc, started = self._start(), time.monotonic()
            delay_s = min(2 * delay_s, RESTART_MAX_DELAY_S)
        self._stop(proc)

    def _start(self) -> subprocess.Popen:
        # A session of its own: a Ctrl-C in the terminal reaches only runworker, which
        # then sends one SIGTERM (a second signal means "kill now" to both frameworks).
        proc = subprocess.Popen(self.cmd, env=self.env, start_new_session=True)
        log.info("%s started: pid %s: %s", self.name, proc.pid, " ".join(self.cmd))
        return proc

    def _stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.error("%s did not stop in %.0fs; killing it", self.name, self.stop_timeout_s)
        _signal_group(proc.pid, signal.SIGKILL)  # nothing may outlive runworker
        proc.wait()
        log.info("%s stopped (exit %s)", self.name, proc.returncode)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


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
