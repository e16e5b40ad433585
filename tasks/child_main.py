"""The workload process: `python -m tasks.child_main FD`, started by tasks/child.py.

It serves WorkRequests from the socket FD until the worker closes it, one at a time,
each under the job's memory limit, and answers each with a WorkReply. It never touches
the database. Django is set up before anything else is imported: the workloads need
the settings and the app registry (a process entry point, like wsgi.py).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
django.setup()

import contextlib  # noqa: E402
import ctypes  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from multiprocessing.connection import Connection  # noqa: E402
from pathlib import Path  # noqa: E402

from apps.jobs.retry import ErrorCode  # noqa: E402
from tasks.child import READY, WorkReply, WorkRequest  # noqa: E402
from tasks.workloads import WorkloadError, run_workload  # noqa: E402

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def child_main(fd: int) -> None:
    """Serve WorkRequests from the socket until the worker closes it."""
    with contextlib.suppress(OSError, AttributeError):  # die with the worker (Linux)
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when to stop
    conn = Connection(fd)
    conn.send(READY)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        reply = run_request(request)
        conn.send(reply)
        if reply.code == ErrorCode.MEMORY:
            return  # a process that hit its limit may be in a bad state: start afresh


def run_request(request: WorkRequest) -> WorkReply:
    """Run one workload under the memory limit; every failure becomes a reply."""
    started = time.monotonic()
    try:
        with memory_limit(request.memory_limit_mb), temp_dir(request.tmp_dir):
            result = run_workload(request)
    except MemoryError:
        error = f"job exceeded its memory limit of {request.memory_limit_mb} MB"
        return WorkReply(ok=False, error=error, code=ErrorCode.MEMORY)
    except WorkloadError as exc:
        return WorkReply(ok=False, error=str(exc), code=exc.code, permanent=exc.permanent)
    except Exception as exc:
        return WorkReply(ok=False, error=f"{type(exc).__name__}: {exc}", code="workload_failed")
    return WorkReply(ok=True, result=result, timings={"child_s": time.monotonic() - started})


@contextlib.contextmanager
def memory_limit(megabytes: int):
    """Cap this process's address space at what it maps now plus `megabytes`."""
    if megabytes <= 0:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _mapped_bytes() + megabytes * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def temp_dir(path: str):
    """Temporary files of this job (Python's and its subprocesses') under `path`."""
    if not path:
        yield
        return
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"], tempfile.tempdir = path, path
    try:
        yield
    finally:
        tempfile.tempdir = None
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before


def _mapped_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    child_main(int(sys.argv[1]))
