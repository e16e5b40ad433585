"""The workload runs in a child process that the worker can kill: hard limits even in C.

Each worker thread keeps one long-lived child (tasks/child_main.py, in a session of
its own, talking over a socket pair): it runs one workload at a time, so OCRmyPDF's
imports and caches stay warm between jobs. Past the job's hard time limit, or when its
lease is lost, the worker kills the child's whole process group (Tesseract and
Ghostscript included) and starts a fresh one for the next job. The child caps its own
address space per job (`RLIMIT_AS`, `JOB_MEMORY_LIMIT_MB` above what it already maps), so
an allocation bomb is a MemoryError reported as `memory`, never a dead worker.

The child never touches the database: it gets the job's fields, returns a JobResult or an
error code. Nothing here decides retries (apps/jobs/retry.py does).
"""

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from apps.jobs.results import JobResult

log = logging.getLogger("tasks.child")
ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 120.0  # Django set-up of a fresh child on a loaded machine
READY = "ready"
CHILD_MODULE = "tasks.child_main"  # the workload process: `python -m tasks.child_main FD`


@dataclass(frozen=True)
class WorkRequest:
    job_id: str
    workload: str
    document: str
    upload: str
    language: str
    memory_limit_mb: int = 0
    tmp_dir: str = ""  # the workload's TMPDIR (tasks/scratch.py); "" = the default


@dataclass(frozen=True)
class WorkReply:
    ok: bool
    result: JobResult | None = None  # a JobResult when ok
    error: str = ""
    code: str = ""
    permanent: bool = False
    timings: dict = field(default_factory=dict)


class ChildGone(Exception):
    """The child died (killed by the kernel, crashed in C) without answering."""


class WorkloadProcess:
    """One child process and its end of the socket pair."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.ready = False

    def start(self) -> None:
        parent, child = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE, str(child.fileno())],
            cwd=ROOT,
            pass_fds=[child.fileno()],
            start_new_session=True,  # killpg reaches Tesseract and Ghostscript too
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.ready = False
        log.debug("workload child started: pid %s", self.proc.pid)

    @property
    def started(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def poll(self, timeout_s: float):
        """The child's next message within `timeout_s`, or None. Raises ChildGone."""
        assert self.conn is not None and self.proc is not None
        try:
            if not self.conn.poll(max(0.0, timeout_s)):
                if self.proc.poll() is not None:
                    raise ChildGone(f"workload process exited with {self.proc.returncode}")
                return None
            return self.conn.recv()
        except (EOFError, OSError) as exc:
            self.proc.wait()
            raise ChildGone(f"workload process exited with {self.proc.returncode}") from exc

    def send(self, request: WorkRequest) -> None:
        assert self.conn is not None
        self.conn.send(request)

    def kill(self) -> None:
        """Kill the child and everything it started; forget it (the next job starts one)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.conn is not None:
            self.conn.close()
        self.proc, self.conn, self.ready = None, None, False


_local = threading.local()


def current() -> WorkloadProcess:
    """This thread's child (Dramatiq runs jobs in threads; each gets its own)."""
    child = getattr(_local, "child", None)
    if child is None:
        child = _local.child = WorkloadProcess()
    return child


def _forget_after_fork() -> None:
    # A forked process (Celery's prefork pool) must not share its parent's child.
    _local.__dict__.pop("child", None)


os.register_at_fork(after_in_child=_forget_after_fork)
