"""The raw family: what each queue costs by itself, without job rows or the API.

For every alias and W consumer processes (tasks/raw_consume.py, each a consumer of the
alias's raw queue: `Backend.raw_queue()`), warmed up, then paused: the bench publishes N
noop messages (publish/s: one at a time through the backend's client, the same way the
lab publishes), lets the consumers go and times until the last one is acked:
msgs/s = N / (last ack - go), the queue's drain rate, not bounded by the publisher; the
round trip rate N / (last ack - first publish) is kept too. The CPU window spans publish
and drain, so CPU-ms per message is a whole round trip; the consumers are `workers`, the
publisher is `bench` (the instrument), the brokers and PostgreSQL are found by name.
An alias without a raw queue gets a "not measured" row with its backend's reason
(`raw_note`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from apps.bench.measure.cpu import INSTRUMENT, CpuWindow
from tasks.backends.base import RawQueue
from tasks.backends.registry import get_backend

FAMILY = "raw"
CONSUMER_MODULE = "tasks.raw_consume"
STOP_WAIT_S = 10.0
SYSTEM_EXCLUDES = (*INSTRUMENT, "other")  # the bench's own share and the rest of the machine


@dataclass(frozen=True)
class RawParams:
    """Sizes of the raw family (--burst-jobs sets `messages`)."""

    messages: int = 2000
    workers: tuple[int, ...] = (1, 2, 4)
    warmup_per_worker: int = 5  # a warm-up round: until every consumer acked one
    ready_timeout_s: float = 60.0
    warmup_timeout_s: float = 90.0
    drain_timeout_s: float = 120.0
    consumer_max_s: float = 600.0


def estimate_s(aliases: list[str], params: RawParams) -> float:
    """A rough time per measured cell: start and warm up (~3 s), publish N at ~500/s."""
    measured = [a for a in aliases if get_backend(a).raw_queue() is not None]
    return len(measured) * len(params.workers) * (3.0 + params.messages / 500.0)


def plan_lines(aliases: list[str], params: RawParams) -> list[str]:
    lines = [f"raw family: {params.messages} noop messages per cell, W = {params.workers}"]
    for alias in aliases:
        backend = get_backend(alias)
        lines.append(f"  {alias}: {backend.raw_note}")
    lines.append(f"estimated: ~{estimate_s(aliases, params) / 60:.1f} min")
    return lines


def run_raw_family(*, aliases: list[str], params: RawParams, env: dict, log_dir: Path, on_row=None):
    """One row per alias x W (see module docstring)."""
    rows = []
    for alias in aliases:
        backend = get_backend(alias)
        queue = backend.raw_queue()
        for workers in params.workers:
            if queue is None:
                row = _row(alias, workers, status="skipped", note=backend.raw_note)
            else:
                row = run_raw_cell(alias, queue, workers, params, env, log_dir)
                row["raw_note"] = backend.raw_note
            rows.append(row)
            if on_row:
                on_row(row)
        if queue is not None:
            queue.close()
    return rows


def _row(alias: str, workers: int, *, status: str = "ok", note: str = "") -> dict:
    return {
        "cell_id": f"raw-{alias}-w{workers}",
        "family": FAMILY,
        "alias": alias,
        "workers": workers,
        "status": status,
        "note": note,
        "metrics": {},
    }


def run_raw_cell(
    alias: str, queue: RawQueue, workers: int, params: RawParams, env: dict, log_dir: Path
) -> dict:
    """W consumers, a warm-up, then N messages at once under a CPU window."""
    row = _row(alias, workers)
    queue.prepare()
    log_dir.mkdir(parents=True, exist_ok=True)
    board = AckBoard()
    procs = [
        _start(alias, params, env, log_dir / f"{row['cell_id']}-{i}.log") for i in range(workers)
    ]
    try:
        board.follow(procs)
        if not board.wait_ready(len(procs), params.ready_timeout_s):
            raise TimeoutError(f"consumers not ready in {params.ready_timeout_s:g}s")
        _warm_up(queue, board, workers, params)
        row["metrics"] = _burst(queue, board, procs, params)
    except (TimeoutError, OSError, RuntimeError) as exc:
        row.update(status="error", note=f"{type(exc).__name__}: {exc}")
    finally:
        _stop(procs)
        queue.purge()
    return row


def _start(alias: str, params: RawParams, env: dict, log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", CONSUMER_MODULE, alias, "--max-s", str(params.consumer_max_s)]
    with log.open("w") as handle:
        return subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=handle, text=True
        )


def _warm_up(queue: RawQueue, board: AckBoard, workers: int, params: RawParams) -> None:
    """Rounds of messages until every consumer acked one (a Kafka group has joined)."""
    deadline = time.monotonic() + params.warmup_timeout_s
    while time.monotonic() < deadline:
        sent = board.total() + workers * params.warmup_per_worker
        for _ in range(workers * params.warmup_per_worker):
            queue.publish()
        board.wait_total(sent, max(0.1, min(10.0, deadline - time.monotonic())))
        if board.all_acked(workers):
            return
    raise TimeoutError(f"warm-up: not every consumer acked within {params.warmup_timeout_s:g}s")


def _burst(queue: RawQueue, board: AckBoard, procs: list, params: RawParams) -> dict:
    """Pause the consumers, publish N, let them go; rates and CPU (module docstring)."""
    _tell(procs, "pause")
    if not board.wait_paused(len(procs), params.ready_timeout_s):
        raise TimeoutError("consumers did not pause")
    target = board.total() + params.messages
    with CpuWindow(roots={p.pid: "workers" for p in procs}) as window:
        started = time.time()
        for _ in range(params.messages):
            queue.publish()
        went = time.time()
        _tell(procs, "go")
        done = board.wait_total(target, params.drain_timeout_s)
    if not done:
        raise TimeoutError(f"{target - board.total()} messages not acked in time")
    metrics = window.metrics(jobs=params.messages)
    metrics.update(messages=params.messages, **_rates(params.messages, started, went, board))
    return metrics


def _rates(count: int, started: float, went: float, board: AckBoard) -> dict:
    last = board.last_ack()
    return {
        "msgs_per_s": count / (last - went) if last > went else None,
        "round_trip_per_s": count / (last - started) if last > started else None,
        "publish_per_s": count / (went - started) if went > started else None,
        "drain_s": last - went,
    }


def _tell(procs: list[subprocess.Popen], word: str) -> None:
    for proc in procs:
        if proc.stdin:
            proc.stdin.write(word + "\n")
            proc.stdin.flush()


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.stdin:
            proc.stdin.close()
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class AckBoard:
    """What the consumers report on stdout: ready, acks and the time of the last ack."""

    def __init__(self):
        self.ready = self.paused = 0
        self.acked: dict[int, int] = {}
        self.last: dict[int, float] = {}
        self.cond = threading.Condition()

    def follow(self, procs: list[subprocess.Popen]) -> None:
        for index, proc in enumerate(procs):
            threading.Thread(target=self._read, args=(index, proc), daemon=True).start()

    def _read(self, index: int, proc: subprocess.Popen) -> None:
        for line in proc.stdout or ():
            with self.cond:
                self._take(index, line.split())
                self.cond.notify_all()

    def _take(self, index: int, words: list[str]) -> None:
        if words == ["ready"]:
            self.ready += 1
        elif words == ["paused"]:
            self.paused += 1
        elif len(words) == 2:
            self.acked[index], self.last[index] = int(words[0]), float(words[1])

    def total(self) -> int:
        with self.cond:
            return sum(self.acked.values())

    def last_ack(self) -> float:
        with self.cond:
            return max(self.last.values(), default=0.0)

    def all_acked(self, workers: int) -> bool:
        with self.cond:
            return sum(1 for n in self.acked.values() if n > 0) >= workers

    def wait_ready(self, count: int, timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.ready >= count, timeout_s)

    def wait_paused(self, count: int, timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.paused >= count, timeout_s)

    def wait_total(self, count: int, timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: sum(self.acked.values()) >= count, timeout_s)


def lifecycle_by_cell(results: list[dict]) -> dict[tuple[str, int], dict]:
    """{(alias, W): median burst jobs/s and CPU-ms per job} of a run's pickup cells."""
    grouped: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        spec = r.get("spec") or {}
        if r.get("status") == "ok" and spec.get("family") == "pickup":
            grouped.setdefault((spec["backend"], int(spec["workers"])), []).append(r["metrics"])
    return {key: _lifecycle(ms) for key, ms in grouped.items()}


def _named_ms(per_job: dict) -> float:
    """CPU-ms per job of the system: named components, not the instrument, not `other`."""
    return sum(v for k, v in per_job.items() if k not in SYSTEM_EXCLUDES)


def _lifecycle(metrics: list[dict]) -> dict:
    rates = [m["burst_throughput"] for m in metrics if m.get("burst_throughput")]
    cpu = [_named_ms(m.get("cpu_ms_per_job") or {}) for m in metrics]
    return {
        "jobs_per_s": statistics.median(rates) if rates else None,
        "cpu_ms_per_job": statistics.median(c for c in cpu if c) if any(cpu) else None,
        "repeats": len(metrics),
    }
