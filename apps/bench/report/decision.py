"""The decision table: one row per backend, one column per criterion, judged against spread.

Every figure comes from the run (summaries, raw results for CPU, the chaos rows). Two values
are "no difference" when their min-max ranges over repeats overlap; for single-run figures
(the OCR cells run once) when they differ by less than NOISE_REL of the best.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from apps.bench.report import chaos_table
from apps.jobs import versions

NOISE_REL = 0.05  # single runs: closer than 5 % to the best is "no difference"
SYNC_NAMES = {v.name: v.short for v in versions.VERSIONS if v.kind == versions.SYNC}
BEST, SAME, WORSE = "best", "no difference", "worse"


@dataclass(frozen=True)
class Value:
    """A figure: median and min-max over `runs` repeats (lo = hi = median for one run)."""

    median: float
    lo: float
    hi: float
    runs: int = 1


@dataclass(frozen=True)
class Criterion:
    key: str
    label: str
    unit: str
    higher_is_better: bool


CRITERIA = (
    Criterion("ocr_w1", "OCR jobs/s W=1", "jobs/s", True),
    Criterion("ocr_w2", "OCR jobs/s W=2", "jobs/s", True),
    Criterion("ocr_w4", "OCR jobs/s W=4", "jobs/s", True),
    Criterion("ceiling", "OCR vs ceiling (W=cores)", "%", True),
    Criterion("ocr_p95", "OCR p95 (W=cores)", "s", False),
    Criterion("capacity", "noop capacity", "jobs/s", True),
    Criterion("pickup_p99", "pickup p99", "ms", False),
    Criterion("hol", "head-of-line penalty", "s", False),
    Criterion("overload_lost", "overload lost", "jobs", False),
    Criterion("overload_drain", "overload drain", "s", False),
    Criterion("faults_bad", "faults: lost+doubled+stuck", "jobs", False),
    Criterion("cpu", "CPU per noop job", "ms", False),
)


def display_name(spec: dict) -> str:
    """Backend alias for queue targets, a readable name for V0-V2."""
    if spec["kind"] == versions.SYNC:
        return SYNC_NAMES.get(spec["target"], spec["target"])
    return spec["backend"]


def value_of(summary: dict | None, name: str, scale: float = 1.0) -> Value | None:
    """A summary's metric as a Value with its spread (None when missing)."""
    if summary is None or summary["metrics"].get(name) is None:
        return None
    med = summary["metrics"][name] * scale
    lo, hi = (summary.get("spread") or {}).get(name) or [None, None]
    lo = med if lo is None else lo * scale
    hi = med if hi is None else hi * scale
    return Value(med, min(lo, hi), max(lo, hi), summary.get("repeats", 1) or 1)


def _pick(cells: list[dict], family: str, workload: str | None, workers: int) -> dict | None:
    match = [
        s
        for s in cells
        if s["spec"].get("family", "load") == family
        and (workload is None or s["spec"]["workload"] == workload)
    ]
    exact = [s for s in match if s["spec"]["workers"] == workers]
    if exact:
        return exact[0]
    return min(match, key=lambda s: abs(s["spec"]["workers"] - workers), default=None)


def _ocr(cells: list[dict], workers: int) -> dict | None:
    found = _pick(cells, "load", "ocr", workers)
    return found if found and found["spec"]["workers"] == workers else None


def figures(cells: list[dict], *, cores: int, bare_s: float | None) -> dict[str, Value | None]:
    """Every criterion's value for one backend's summaries (status ok)."""
    at_cores = _ocr(cells, cores)
    thr = value_of(at_cores, "throughput")
    ceiling = None
    if thr and bare_s:
        ideal = cores / bare_s
        ceiling = Value(thr.median / ideal * 100, thr.lo / ideal * 100, thr.hi / ideal * 100)
    pickups = [s for s in cells if s["spec"].get("family") == "pickup"]
    best_burst = max(pickups, key=lambda s: s["metrics"].get("burst_throughput") or 0, default=None)
    return {
        "ocr_w1": value_of(_ocr(cells, 1), "throughput"),
        "ocr_w2": value_of(_ocr(cells, 2), "throughput"),
        "ocr_w4": value_of(_ocr(cells, 4), "throughput"),
        "ceiling": ceiling,
        "ocr_p95": value_of(at_cores, "e2e_p95_ms", 0.001),
        "capacity": value_of(best_burst, "burst_throughput"),
        "pickup_p99": value_of(_pick(cells, "pickup", None, cores), "pickup_p99_ms"),
        "hol": value_of(_pick(cells, "mixed", None, cores), "hol_penalty_s"),
        "overload_lost": value_of(_pick(cells, "overload", None, cores), "lost"),
        "overload_drain": value_of(_pick(cells, "overload", None, cores), "drain_s"),
    }


def cpu_per_job(results: list[dict], target: str) -> Value | None:
    """Total CPU-ms per job (sum of components) of the target's pickup runs, per repeat."""
    totals = [
        sum(v for v in (r["metrics"].get("cpu_ms_per_job") or {}).values() if v is not None)
        for r in results
        if r["status"] == "ok"
        and r["spec"]["target"] == target
        and r["spec"].get("family") == "pickup"
        and r["metrics"].get("cpu_ms_per_job")
    ]
    if not totals:
        return None
    return Value(statistics.median(totals), min(totals), max(totals), len(totals))


def fault_value(chaos_rows: list[dict], backend: str) -> Value | None:
    """lost + doubled + stuck over every fault of the backend's chaos rows."""
    entry = chaos_table.summary(chaos_rows).get(backend)
    if entry is None:
        return None
    bad = float(entry["lost"] + entry["doubled"] + entry["stuck"])
    return Value(bad, bad, bad)


def table_values(
    summaries: list[dict], results: list[dict], context: dict
) -> dict[str, dict[str, Value | None]]:
    """{backend name: {criterion key: Value or None}} for every target of the run."""
    cores = (context.get("machine") or {}).get("nproc") or 2
    bare_s = (context.get("bare_ocr") or {}).get("median_s")
    chaos_rows = context.get("chaos") or []
    by_target: dict[str, list[dict]] = defaultdict(list)
    for s in summaries:
        if s["status"] == "ok":
            by_target[s["spec"]["target"]].append(s)
    out = {}
    for target, cells in by_target.items():
        spec = cells[0]["spec"]
        values = figures(cells, cores=cores, bare_s=bare_s)
        values["faults_bad"] = fault_value(chaos_rows, spec["backend"])
        values["cpu"] = cpu_per_job(results, target)
        out[display_name(spec)] = values
    return out


def same(a: Value, b: Value) -> bool:
    """No difference: ranges overlap (repeated figures) or within NOISE_REL (single runs)."""
    if a.runs > 1 and b.runs > 1:
        return a.lo <= b.hi and b.lo <= a.hi
    scale = max(abs(a.median), abs(b.median))
    return scale == 0 or abs(a.median - b.median) <= NOISE_REL * scale


def judge(values: dict[str, Value | None], criterion: Criterion) -> dict[str, str]:
    """{backend: best | no difference | worse} among the backends that have the figure."""
    have = {name: v for name, v in values.items() if v is not None}
    if not have:
        return {}
    pick = max if criterion.higher_is_better else min
    best_name = pick(have, key=lambda n: have[n].median)
    best = have[best_name]
    return {
        name: BEST if name == best_name else (SAME if same(v, best) else WORSE)
        for name, v in have.items()
    }


def decide(summaries: list[dict], results: list[dict], context: dict) -> dict:
    """The table's values, each criterion's verdicts, and the 'what to pick' paragraph."""
    values = table_values(summaries, results, context)
    verdicts = {c.key: judge({name: v[c.key] for name, v in values.items()}, c) for c in CRITERIA}
    return {"values": values, "verdicts": verdicts, "advice": advice(values, verdicts)}


def _fmt(value: float, unit: str) -> str:
    digits = 0 if unit in ("jobs", "%") or abs(value) >= 100 else (2 if abs(value) < 10 else 1)
    return f"{value:,.{digits}f} {unit}".replace(" %", " %")


def advice(values: dict[str, dict], verdicts: dict[str, dict[str, str]]) -> list[str]:
    """Sentences generated from the verdicts: per criterion, then what to pick."""
    lines = []
    for c in CRITERIA:
        verdict = verdicts.get(c.key) or {}
        if not verdict:
            continue
        best = next(n for n, v in verdict.items() if v == BEST)
        best_v = values[best][c.key]
        ties = sorted(n for n, v in verdict.items() if v == SAME)
        worse = sorted(n for n, v in verdict.items() if v == WORSE)
        text = f"**{c.label}**: best {best} ({_fmt(best_v.median, c.unit)})"
        if ties:
            text += f"; no difference (within the run's spread): {', '.join(ties)}"
        if worse:
            shown = [f"{n} {_fmt(values[n][c.key].median, c.unit)}" for n in worse]
            text += f"; different: {', '.join(shown)}"
        lines.append(text + ".")
    lines.append(_pick_line(values, verdicts))
    missing = [c.label for c in CRITERIA if not verdicts.get(c.key)]
    if missing:
        lines.append(f"Not measured in this run: {', '.join(missing)}.")
    return lines


def _pick_line(values: dict[str, dict], verdicts: dict[str, dict[str, str]]) -> str:
    queues = [n for n in values if n not in SYNC_NAMES.values()]
    if not queues:
        return "What to pick: no queue backend was measured."
    losses = {n: [c.label for c in CRITERIA if verdicts[c.key].get(n) == WORSE] for n in queues}
    fewest = min(len(v) for v in losses.values())
    picks = sorted(n for n, v in losses.items() if len(v) == fewest)
    measured = {n: sum(1 for c in CRITERIA if n in verdicts[c.key]) for n in picks}
    counts = ", ".join(f"{n} on {k}" for n, k in measured.items())
    why = (
        "never outside the best's spread on any measured criterion"
        if fewest == 0
        else f"fewest criteria ({fewest}) outside the best's spread"
    )
    head = f"What to pick: **{', '.join(picks)}**: {why} (criteria measured: {counts})"
    others = [
        f"{n} (differs on {', '.join(v)})" for n, v in sorted(losses.items()) if n not in picks
    ]
    tail = f". The others: {'; '.join(others)}." if others else "."
    return head + tail
