"""Workers of the stack (`scripts/stack.sh`) running beside the bench would take its jobs.

The `db` backend's queue is the OcrJob table, so a stack worker for `db` claims the bench's
jobs, and any stack worker takes CPU from the cells. The bench refuses to start beside
them (or stops them with --stop-stray).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import psutil

from ocrproject.launch import ROOT

PID_DIR = ROOT / "var" / "run"
STOP_WAIT_S = 30.0


def stray_workers(pid_dir: Path = PID_DIR) -> dict[str, int]:
    """{pid file name: pid} of the stack's workers that are alive."""
    alive = {}
    for pidfile in sorted(pid_dir.glob("worker-*.pid")):
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            continue
        if psutil.pid_exists(pid):
            alive[pidfile.name] = pid
    return alive


def refusal(alive: dict[str, int]) -> str:
    """The message that stops the bench from running beside the stack's workers."""
    listed = ", ".join(f"{name} (pid {pid})" for name, pid in alive.items())
    return (
        f"stack workers are running: {listed}. They would take the bench's jobs and CPU. "
        "Stop them with `scripts/stack.sh stop-workers` (or `make down`), "
        "or run `runbench --stop-stray` to stop them first."
    )


def stop_stray(alive: dict[str, int], pid_dir: Path = PID_DIR) -> None:
    """SIGTERM each stray worker's process group (stack.sh starts them with setsid)."""
    for name, pid in alive.items():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while psutil.pid_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if psutil.pid_exists(pid):
            os.killpg(pid, signal.SIGKILL)
        (pid_dir / name).unlink(missing_ok=True)
