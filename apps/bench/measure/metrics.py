"""Pure metric computations of the bench: from job rows (plain numbers) to a cell's metrics.

Percentiles use linear interpolation between closest ranks (the "linear" method of
NumPy, Excel's PERCENTILE.INC): for sorted values x[0..n-1] and q in [0, 100], the rank is
h = (n - 1) * q / 100 and the result x[floor(h)] + (h - floor(h)) * (x[ceil(h)] - x[floor(h)]).

All times are seconds (epoch floats); nothing here touches Django or the network.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DONE, FAILED, CANCELLED = "DONE", "FAILED", "CANCELLED"
FINISHED = (DONE, FAILED, CANCELLED)
SUCCESS, ERROR, TIMEOUT = "success", "error", "timeout"


@dataclass(frozen=True)
class JobTimes:
    """One job row reduced to what the metrics need (times in epoch seconds)."""

    status: str
    created: float
    queued: float | None = None
    started: float | None = None
    finished: float | None = None
    attempts: int = 0

    @property
    def total_s(self) -> float | None:
        return None if self.finished is None else self.finished - self.created

    @property
    def pickup_s(self) -> float | None:
        return None if self.queued is None or self.started is None else self.started - self.queued

    @property
    def service_s(self) -> float | None:
        return (
            None
            if self.started is None or self.finished is None
            else (self.finished - self.started)
        )


@dataclass(frozen=True)
class SubmitStats:
    """The submit request's line of locust's stats CSV (times in milliseconds)."""

    requests: int
    failures: int
    p50_ms: float | None = None
    p99_ms: float | None = None


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    data = sorted(values)
    if not data:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    rank = (len(data) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return data[low] + (rank - low) * (data[high] - data[low])


def classify(job: JobTimes, deadline_s: float) -> str:
    """success: DONE within the deadline; error: FAILED; timeout: unfinished or DONE late."""
    if job.status == FAILED:
        return ERROR
    if job.status == DONE and job.total_s is not None and job.total_s <= deadline_s:
        return SUCCESS
    return TIMEOUT


def throughput(jobs: Sequence[JobTimes]) -> float | None:
    """Finished jobs (DONE or FAILED) per second, over first created -> last finished."""
    finished = [j for j in jobs if j.status in FINISHED and j.finished is not None]
    if not finished:
        return None
    last = max(j.finished for j in finished if j.finished is not None)
    window = last - min(j.created for j in jobs)
    return len(finished) / window if window > 0 else None


def ratio(part: int, whole: int) -> float | None:
    """part / whole, None when whole is 0."""
    return part / whole if whole else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def latency_metrics(jobs: Sequence[JobTimes]) -> dict[str, float | None]:
    """End-to-end (DONE jobs), pickup (all picked-up jobs) and service time, in ms."""
    done = [j for j in jobs if j.status == DONE]
    total = [j.total_s for j in done if j.total_s is not None]
    pickup = [j.pickup_s for j in jobs if j.pickup_s is not None]
    service = [j.service_s for j in done if j.service_s is not None]
    return {
        "e2e_p50_ms": _ms(percentile(total, 50)),
        "e2e_p95_ms": _ms(percentile(total, 95)),
        "e2e_p99_ms": _ms(percentile(total, 99)),
        "e2e_max_ms": _ms(max(total, default=None)),
        "pickup_p50_ms": _ms(percentile(pickup, 50)),
        "pickup_p99_ms": _ms(percentile(pickup, 99)),
        "service_p50_ms": _ms(percentile(service, 50)),
    }


def outcome_metrics(
    jobs: Sequence[JobTimes], deadline_s: float, submit: SubmitStats | None
) -> dict[str, float | int | None]:
    """Counts and ratios. Submits that made no row (locust requests - rows) are errors."""
    kinds = [classify(j, deadline_s) for j in jobs]
    no_row = max(0, submit.requests - len(jobs)) if submit else 0
    submitted = len(jobs) + no_row
    successes, timeouts = kinds.count(SUCCESS), kinds.count(TIMEOUT)
    errors = kinds.count(ERROR) + no_row
    return {
        "submitted": submitted,
        "rows": len(jobs),
        "submit_errors": no_row,
        "successes": successes,
        "errors": errors,
        "timeouts": timeouts,
        "success_ratio": ratio(successes, submitted),
        "error_ratio": ratio(errors, submitted),
        "timeout_ratio": ratio(timeouts, submitted),
        "retried": sum(1 for j in jobs if j.attempts > 1),
    }


def cell_metrics(
    jobs: Sequence[JobTimes], *, deadline_s: float, submit: SubmitStats | None = None
) -> dict[str, float | int | None]:
    """Every metric of one cell, computed from its job rows and locust's submit line."""
    metrics = outcome_metrics(jobs, deadline_s, submit)
    metrics["throughput"] = throughput(jobs)
    metrics.update(latency_metrics(jobs))
    metrics["submit_p50_ms"] = submit.p50_ms if submit else None
    metrics["submit_p99_ms"] = submit.p99_ms if submit else None
    return metrics


def scaling_efficiency(
    throughput_w: float | None, base_1: float | None, workers: int
) -> float | None:
    """throughput at W workers / (W x throughput at 1 worker); None if either is missing."""
    if throughput_w is None or not base_1 or workers < 1:
        return None
    return throughput_w / (workers * base_1)


Spread = tuple[float | None, float | None, float | None]


def median_spread(values: Iterable[float | None]) -> Spread:
    """(median, min, max) of the values that are not None; Nones for none."""
    data = [v for v in values if v is not None]
    if not data:
        return None, None, None
    return statistics.median(data), min(data), max(data)
