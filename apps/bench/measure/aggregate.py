"""From per-run cell results to one summary per cell: medians over repeats, spread, scaling.

A cell result (and a summary) is a plain dict, so it goes to JSON and back unchanged:
    {"spec": CellSpec.as_dict(), "status": "ok" | "skipped" | "error", "note": str,
     "metrics": {name: value}, ...}
A summary adds "repeats" (ok runs) and "spread" ({name: [min, max]}).
"""

from __future__ import annotations

from collections import defaultdict

from apps.bench.measure.metrics import median_spread, scaling_efficiency

KEY_FIELDS = ("target", "workload", "workers", "users", "jobs_per_user", "deadline_s", "engine")
SERIES_FIELDS = ("target", "workload", "users", "jobs_per_user", "deadline_s", "engine")
FIELD_DEFAULTS = {"engine": "lab"}  # fields that results written before them lack


def spec_key(spec: dict, fields: tuple[str, ...] = KEY_FIELDS) -> tuple:
    """The cell's identity across repeats (or, with SERIES_FIELDS, across workers)."""
    return tuple(spec[name] if name in spec else FIELD_DEFAULTS[name] for name in fields)


def summarize(results: list[dict]) -> list[dict]:
    """One summary per cell key, in first-seen order, with scaling efficiency added."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for result in results:
        groups[spec_key(result["spec"])].append(result)
    summaries = [_summary(group) for group in groups.values()]
    add_scaling(summaries)
    return summaries


def _summary(group: list[dict]) -> dict:
    spec = {k: v for k, v in group[0]["spec"].items() if k != "repeat"}
    ok = [r for r in group if r["status"] == "ok"]
    notes = sorted({r["note"] for r in group if r.get("note")})
    if not ok:
        return {
            "spec": spec,
            "status": group[0]["status"],
            "note": "; ".join(notes),
            "repeats": 0,
            "metrics": {},
            "spread": {},
        }
    names = sorted({name for r in ok for name in r["metrics"]})
    metrics: dict[str, object] = {}
    spread: dict[str, list[float | None]] = {}
    for name in names:
        values = [r["metrics"].get(name) for r in ok]
        if any(isinstance(v, dict) for v in values):  # e.g. cpu_s: a median per key
            metrics[name] = median_per_key([v for v in values if isinstance(v, dict)])
            continue
        med, low, high = median_spread(v for v in values if isinstance(v, int | float))
        metrics[name], spread[name] = med, [low, high]
    return {
        "spec": spec,
        "status": "ok",
        "note": "; ".join(notes),
        "repeats": len(ok),
        "metrics": metrics,
        "spread": spread,
    }


def median_per_key(dicts: list[dict]) -> dict:
    """{key: median over the dicts of their numeric values} (e.g. CPU seconds per component)."""
    keys = sorted({k for d in dicts for k in d})
    return {
        k: median_spread(d.get(k) for d in dicts if isinstance(d.get(k), int | float))[0]
        for k in keys
    }


def add_scaling(summaries: list[dict]) -> None:
    """metrics["scaling_efficiency"] = thr(W) / (W x thr(1)) within each series."""
    base = {
        spec_key(s["spec"], SERIES_FIELDS): s["metrics"].get("throughput")
        for s in summaries
        if s["spec"]["workers"] == 1 and s["status"] == "ok"
    }
    for s in summaries:
        if s["status"] != "ok":
            continue
        one = base.get(spec_key(s["spec"], SERIES_FIELDS))
        s["metrics"]["scaling_efficiency"] = scaling_efficiency(
            s["metrics"].get("throughput"), one, s["spec"]["workers"]
        )


def find(summaries: list[dict], **where) -> list[dict]:
    """Summaries whose spec matches every given field (status ok only)."""
    return [
        s
        for s in summaries
        if s["status"] == "ok" and all(s["spec"].get(k) == v for k, v in where.items())
    ]


def metric(summary: dict | None, name: str) -> float | None:
    """A summary's metric, None when the summary or the metric is missing."""
    return None if summary is None else summary["metrics"].get(name)
