"""Pure computations of the scenario families (apps.bench.run.families): no Django, no network.

Rows are plain dicts with epoch-second floats: created_at, queued_at, started_at,
finished_at, status, attempts and (mixed) workload.
"""

from __future__ import annotations

from collections.abc import Sequence

from apps.bench.measure.metrics import percentile

DONE = "DONE"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _span(row: dict, start: str, end: str) -> float | None:
    a, b = row.get(start), row.get(end)
    return None if a is None or b is None else b - a


def e2e_s(rows: Sequence[dict]) -> list[float]:
    """finished - created of the DONE rows, seconds."""
    return [
        t
        for r in rows
        if r["status"] == DONE and (t := _span(r, "created_at", "finished_at")) is not None
    ]


def pickup_metrics(rows: Sequence[dict]) -> dict[str, float | None]:
    """Pickup (queued -> started) and end-to-end of one-at-a-time noop jobs, ms."""
    pickup = [t for r in rows if (t := _span(r, "queued_at", "started_at")) is not None]
    total = e2e_s(rows)
    return {
        "probe_jobs": len(rows),
        "pickup_p50_ms": _ms(percentile(pickup, 50)),
        "pickup_p99_ms": _ms(percentile(pickup, 99)),
        "probe_e2e_p50_ms": _ms(percentile(total, 50)),
        "probe_e2e_p99_ms": _ms(percentile(total, 99)),
    }


def mixed_metrics(rows: Sequence[dict], *, short: str) -> dict[str, float | None]:
    """Short-job latency while long jobs run, and the head-of-line penalty (seconds).

    penalty = p95 of the short jobs' end-to-end - p50 of their own service time: the extra
    wait a short job suffers behind long ones (0 for a scheduler that always finds it a free
    worker while one is free).
    """
    shorts = [r for r in rows if r.get("workload") == short]
    total = e2e_s(shorts)
    service = [t for r in shorts if (t := _span(r, "started_at", "finished_at")) is not None]
    p95, own = percentile(total, 95), percentile(service, 50)
    return {
        "short_jobs": len(shorts),
        "long_jobs": len(rows) - len(shorts),
        "short_p50_s": percentile(total, 50),
        "short_p95_s": p95,
        "short_max_s": max(total) if total else None,
        "short_service_p50_s": own,
        "hol_penalty_s": None if p95 is None or own is None else max(0.0, p95 - own),
        "lost": sum(1 for r in rows if r["status"] != DONE),
    }


def queue_depth(rows: Sequence[dict], *, step_s: float, origin: float) -> list[list[float]]:
    """[[t - origin, jobs created but not yet started]] every `step_s` until the last start."""
    if not rows:
        return []
    ends = [r.get("started_at") or r.get("finished_at") or float("inf") for r in rows]
    last = max((e for e in ends if e != float("inf")), default=origin)
    first = min(r["created_at"] for r in rows)
    points, t = [], first
    while t <= last + step_s:
        waiting = sum(1 for r, end in zip(rows, ends, strict=True) if r["created_at"] <= t < end)
        points.append([round(t - origin, 3), waiting])
        t += step_s
    return points


def overload_metrics(
    rows: Sequence[dict], *, arrivals: int, stopped_at: float, rate_per_s: float
) -> dict[str, float | int | None]:
    """Drain time after arrivals stop, lost jobs, latency growth (last fifth / first fifth)."""
    done = [r for r in rows if r["status"] == DONE and r.get("finished_at") is not None]
    last = max((r["finished_at"] for r in done), default=None)
    ordered = sorted(rows, key=lambda r: r["created_at"])
    fifth = max(1, len(ordered) // 5)
    head, tail = e2e_s(ordered[:fifth]), e2e_s(ordered[-fifth:])
    head_p50, tail_p50 = percentile(head, 50), percentile(tail, 50)
    return {
        "arrivals": arrivals,
        "arrival_rate_per_s": rate_per_s,
        "done": len(done),
        "lost": arrivals - len(done),
        "redelivered": sum(1 for r in rows if (r.get("attempts") or 0) > 1),
        "drain_s": None if last is None else max(0.0, last - stopped_at),
        "e2e_p95_s": percentile(e2e_s(rows), 95),
        "e2e_first_p50_s": head_p50,
        "e2e_last_p50_s": tail_p50,
        "latency_growth": None if not head_p50 or tail_p50 is None else tail_p50 / head_p50,
    }


def drain_rate(rows: Sequence[dict]) -> float | None:
    """DONE jobs / (last finished - first created): what the workers sustain."""
    done = [r for r in rows if r["status"] == DONE and r.get("finished_at") is not None]
    if not done:
        return None
    window = max(r["finished_at"] for r in done) - min(r["created_at"] for r in rows)
    return len(done) / window if window > 0 else None


def peak(samples: Sequence[Sequence[float]]) -> float | None:
    """Largest value of [[t, value], ...]."""
    return max((v for _, v in samples), default=None)
