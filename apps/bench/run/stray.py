"""Workers of the stack (`scripts/stack.sh`) running beside the bench would take its jobs.

The `db` backend's queue is the OcrJob table, so a stack worker for `db` claims the bench's
jobs, and any stack worker takes CPU from the cells. The bench refuses to start beside
them (or stops them with --stop-stray).
"""

from __future__ import annotations

from pathlib import Path

from apps.ops.stack import RUN_DIR, Stack

PID_DIR = RUN_DIR
STOP_WAIT_S = 30.0


def stray_workers(pid_dir: Path = PID_DIR) -> dict[str, int]:
    """{pid file name: pid} of the stack's workers that are alive."""
    stack = Stack(run_dir=pid_dir)
    alive = {}
    for pidfile in sorted(pid_dir.glob("worker-*.pid")):
        pid = stack.pid(pidfile.stem)
        if pid is not None and stack.running(pidfile.stem):
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
    """Stop the stray workers as `stack stop-workers` does (their process groups)."""
    names = [name.removesuffix(".pid") for name in alive]
    Stack(run_dir=pid_dir).down(names, timeout_s=STOP_WAIT_S)
