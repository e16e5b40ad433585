"""The OCR server's hard limits: each request's OCR runs in a forked child it can kill.

An OCR server is one gunicorn sync worker, one request at a time (apps/ops/launch.py). For
each request it forks (the engine is already imported and warm; a fork costs a few ms), the
child caps its address space (``RLIMIT_AS``: what it maps now plus
OCR_SERVER_MEMORY_LIMIT_MB; Tesseract and Ghostscript inherit the cap) and runs ``run_ocr``
in a process group of its own. The server waits at most OCR_SERVER_TIME_LIMIT_S, then kills
the whole group (Tesseract and Ghostscript included). So a request that explodes costs the
request, never the server:

* past the time limit: OcrError ``timeout`` (the view answers 504);
* past the memory limit: OcrError ``memory`` (422);
* the child died without answering (a signal, a crash in C): ``ocr_failed`` (500).

The child sends back the result and its warm dependency probes (apps/ocr/probes.py), so
the next request's child does not probe again.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import warnings
from multiprocessing.connection import Connection, Pipe

from apps.ocr import engine, probes
from apps.ocr.engine import OcrError, OcrResult, PredictRequest

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>: the child dies with the server
MB = 1024 * 1024


def run_ocr_limited(
    request: PredictRequest, *, memory_limit_mb: int, time_limit_s: float
) -> OcrResult:
    """``run_ocr(request)`` in a child within the limits (0 = no limit). Raises OcrError."""
    receiver, sender = Pipe(duplex=False)
    with warnings.catch_warnings():  # the child runs the engine only, never our threads' work
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover (the child leaves with os._exit)
        receiver.close()
        _child_main(request, sender, memory_limit_mb)
    sender.close()
    with contextlib.suppress(OSError):  # also here: a kill must find the group at once
        os.setpgid(pid, pid)
    try:
        return _wait_reply(receiver, pid=pid, time_limit_s=time_limit_s)
    finally:
        receiver.close()
        _kill_group(pid)


def _wait_reply(receiver: Connection, *, pid: int, time_limit_s: float) -> OcrResult:
    if not receiver.poll(time_limit_s if time_limit_s > 0 else None):
        raise OcrError(
            "timeout", f"OCR took longer than the server's limit of {time_limit_s:g} s; stopped."
        )
    try:
        kind, payload, probe_state = receiver.recv()
    except (EOFError, OSError) as exc:
        raise OcrError("ocr_failed", f"The OCR process died ({_exit_reason(pid)}).") from exc
    probes.restore(probe_state)
    if kind == "error":
        raise OcrError(*payload)
    return payload


def _child_main(request: PredictRequest, sender: Connection, memory_limit_mb: int) -> None:
    """Run the request and send ("ok", OcrResult) or ("error", (code, reason)); exit."""
    status = 1
    try:
        _become_child(memory_limit_mb)
        sender.send(_outcome(request, memory_limit_mb))
        status = 0
    finally:
        os._exit(status)


def _become_child(memory_limit_mb: int) -> None:
    os.setpgid(0, 0)  # one group: a kill reaches Tesseract and Ghostscript too
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)  # not the server's (gunicorn's) handlers
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if memory_limit_mb > 0:
        cap = _mapped_bytes() + memory_limit_mb * MB
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard < 0 else min(cap, hard), hard))


def _outcome(request: PredictRequest, memory_limit_mb: int) -> tuple:
    try:
        return "ok", engine.run_ocr(request), probes.snapshot()
    except OcrError as exc:
        return "error", (exc.code, exc.reason), probes.snapshot()
    except MemoryError:
        reason = f"OCR needed more than the server's memory limit of {memory_limit_mb} MB."
        return "error", ("memory", reason), None


def _mapped_bytes() -> int:
    """This process's address space now (VmSize), so the cap is `megabytes` on top of it."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def _kill_group(pid: int) -> None:
    """Kill the child's group (whatever is left of it) and reap the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _exit_reason(pid: int) -> str:
    with contextlib.suppress(ChildProcessError):
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
        return f"exit status {os.WEXITSTATUS(status)}"
    return "no status"
