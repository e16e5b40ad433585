"""report.md sections of the decision and the scenario families (pickup, mixed, overload,
faults, cost). Every figure is median (min-max) over the repeats that ran."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from apps.bench.decide.decision import display_name
from apps.bench.measure.cpu import COMPONENTS as CPU_COMPONENTS
from apps.bench.report import chaos_table
from apps.bench.report.markdown import NONE, table

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Value:
    """A figure of a summary: median and min-max over `runs` repeats."""

    median: float
    lo: float
    hi: float
    runs: int = 1


def value_of(summary: dict | None, name: str, scale: float = 1.0) -> Value | None:
    """A summary's metric as a Value with its spread (None when missing)."""
    if summary is None or summary["metrics"].get(name) is None:
        return None
    med = summary["metrics"][name] * scale
    lo, hi = (summary.get("spread") or {}).get(name) or [None, None]
    lo = med if lo is None else lo * scale
    hi = med if hi is None else hi * scale
    return Value(med, min(lo, hi), max(lo, hi), summary.get("repeats", 1) or 1)


def show(value: Value | None, unit: str = "", digits: int = 2) -> str:
    """'0.93 (0.90-0.95)' for repeats, '0.93' for one run, 'not measured' for None."""
    if value is None:
        return NOT_MEASURED
    fmt = f"{{:,.{digits}f}}"
    text = fmt.format(value.median)
    if value.runs > 1 and value.hi != value.lo:
        text += f" ({fmt.format(value.lo)}-{fmt.format(value.hi)})"
    return text + (f" {unit}" if unit else "")


def _family(summaries: list[dict], family: str) -> list[dict]:
    return [s for s in summaries if s["status"] == "ok" and s["spec"].get("family") == family]


def _v(summary: dict, name: str, scale: float = 1.0) -> Value | None:
    return value_of(summary, name, scale)


def pickup_table(summaries: list[dict]) -> list[str]:
    """Pickup latency at idle and burst capacity per backend and W."""
    rows = [
        [
            display_name(s["spec"]),
            s["spec"]["workers"],
            s["repeats"],
            show(_v(s, "pickup_p50_ms"), digits=1),
            show(_v(s, "pickup_p99_ms"), digits=1),
            show(_v(s, "burst_throughput"), digits=0),
            show(_v(s, "burst_e2e_p99_ms"), digits=0),
        ]
        for s in _family(summaries, "pickup")
    ]
    if not rows:
        return []
    header = ["backend", "W", "runs", "pickup p50 ms", "pickup p99 ms", "capacity jobs/s",
              "burst e2e p99 ms"]  # fmt: skip
    intro = (
        "noop jobs submitted one at a time from the bench (pickup = queued -> started at idle), "
        "then a burst published at once (capacity = jobs / (last finished - first created))."
    )
    return ["## Pickup latency and noop capacity", "", intro, ""] + table(
        header, rows, "l" + "r" * (len(header) - 1)
    )


def mixed_table(summaries: list[dict]) -> list[str]:
    """Short-job latency while long jobs run (head-of-line blocking)."""
    rows = [
        [
            display_name(s["spec"]),
            s["spec"]["workers"],
            s["repeats"],
            show(_v(s, "short_p50_s")),
            show(_v(s, "short_p95_s")),
            show(_v(s, "short_max_s")),
            show(_v(s, "hol_penalty_s")),
            show(_v(s, "lost"), digits=0),
        ]
        for s in _family(summaries, "mixed")
    ]
    if not rows:
        return []
    header = ["backend", "W", "runs", "short p50 s", "short p95 s", "short max s",
              "head-of-line penalty s", "lost"]  # fmt: skip
    intro = (
        "Long and short jobs on a fixed open-loop schedule, about 60 % of the workers busy. "
        "A scheduler that hands a short job to a free worker keeps its latency at its own "
        "service time; one that queues it behind a long job (a partition's consumer, a "
        "prefetched message) adds up to a long job's duration."
    )
    return ["## Mixed job sizes: head-of-line blocking", "", intro, ""] + table(
        header, rows, "l" + "r" * (len(header) - 1)
    )


def overload_table(summaries: list[dict]) -> list[str]:
    """Open-loop arrivals beyond capacity: depth, latency growth, drain, memory, losses."""
    rows = [
        [
            display_name(s["spec"]),
            s["spec"]["workers"],
            show(_v(s, "capacity_per_s"), digits=1),
            show(_v(s, "arrival_rate_per_s"), digits=1),
            show(_v(s, "processed_per_s"), digits=1),
            show(_v(s, "arrivals"), digits=0),
            show(_v(s, "peak_depth"), digits=0),
            show(_v(s, "latency_growth"), digits=1),
            show(_v(s, "drain_s"), digits=1),
            show(_v(s, "broker_rss_peak_mb"), digits=0),
            show(_v(s, "worker_rss_peak_mb"), digits=0),
            show(_v(s, "lost"), digits=0),
        ]
        for s in _family(summaries, "overload")
    ]
    if not rows:
        return []
    header = ["backend", "W", "calibrated jobs/s", "offered/s", "processed/s", "jobs",
              "peak depth", "latency growth x", "drain s", "broker RSS MB", "workers RSS MB",
              "lost"]  # fmt: skip
    intro = (
        "A small calibration burst (its rate shown), then open-loop arrivals at 1.5x the "
        "workers' nominal rate (W / job seconds: the same offered load for every backend) for "
        "a fixed time, then stop; processed = done / (last finished - first created). "
        "Depth = created but not started (from the job rows); latency growth = e2e p50 of "
        "the last fifth of arrivals / first fifth; drain = last finished - "
        "arrivals stopped; RSS peaks sampled with psutil (broker = its server processes, "
        "Postgres for db, shared with the job table)."
    )
    return ["## Overload: 1.5x the nominal rate, then stop", "", intro, ""] + table(
        header, rows, "l" + "r" * (len(header) - 1)
    )


def faults_table(chaos_rows: list[dict], note: str = "") -> list[str]:
    """The chaos table (backend x fault), or how to get it (and why `--chaos` failed)."""
    head = ["## Faults (chaos)", ""] + ([f"`manage.py chaos` failed: {note}", ""] if note else [])
    if not chaos_rows:
        return head + [
            "Faults: not measured in this run (no chaos.json). Run `manage.py runbench --chaos` "
            "(runs `manage.py chaos` into the run's folder) or pass `--chaos-file PATH`."
        ]
    rows = [
        [
            r["backend"],
            r["fault"],
            *[NONE if r.get(k) is None else f"{r[k]:g}" for k in chaos_table.FIELDS],
        ]
        for r in chaos_rows
    ]
    header = ["backend", "fault", "lost", "stored twice", "stuck", "executed twice", "recovery s"]
    return head + table(header, rows, "llrrrrr")


def cost_table(results: list[dict]) -> list[str]:
    """CPU-ms per job per component (medians over runs) and RSS, per backend."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        if r["status"] == "ok" and r["metrics"].get("cpu_ms_per_job"):
            spec = r["spec"]
            key = (
                display_name(spec),
                spec.get("family", "load"),
                spec["workload"],
                spec["workers"],
            )
            groups.setdefault(key, []).append(r["metrics"])
    head = ["## Cost: CPU and memory", ""]
    if not groups:
        return head + [
            "CPU per component: not measured in this run (no `cpu_ms_per_job` in the cells' "
            "metrics). RSS of broker and workers: see the pickup and overload tables."
        ]
    rows = []
    for (name, family, workload, w), runs in groups.items():
        comps = [_median([m["cpu_ms_per_job"].get(c) for m in runs]) for c in CPU_COMPONENTS]
        share = _median([m.get("instrument_share") for m in runs])
        rows.append(
            [name, family if family != "load" else workload, w, len(runs),
             *[NONE if v is None else f"{v:.1f}" for v in comps],
             NONE if share is None else f"{share * 100:.1f} %"]
        )  # fmt: skip
    header = ["backend", "cell", "W", "runs", *[f"{c} ms/job" for c in CPU_COMPONENTS],
              "instrument share"]  # fmt: skip
    return head + table(header, rows, "llrr" + "r" * (len(CPU_COMPONENTS) + 1))


def _median(values: list) -> float | None:
    data = [v for v in values if isinstance(v, int | float)]
    return statistics.median(data) if data else None
