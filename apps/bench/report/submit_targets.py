"""Targets of the load issue, measured: the instrument's share and the submit capacity.

Rows in the shape of apps.bench.report.targets (appended to its table); benchmarks, not tests.
"""

from __future__ import annotations

from apps.bench.measure.aggregate import find, metric
from apps.bench.report.targets import at_least, at_most, row
from apps.bench.run.submit_cells import P99_LIMIT_MS, SUBMIT

INSTRUMENT_MAX = 0.05
SUBMIT_JOBS_PER_S = 500.0
LADDER_USERS = 64


def evaluate_load(summaries: list[dict]) -> list[dict]:
    """Instrument share per OCR cell, then errors, p99 and capacity of the submit cells."""
    rows = [
        at_most(
            "instrument share of the machine (loadgen + bench)",
            _scope(s),
            metric(s, "instrument_share"),
            INSTRUMENT_MAX,
            "%",
        )
        for s in find(summaries, workload="ocr")
        if metric(s, "instrument_share") is not None
    ]
    submit = find(summaries, workload=SUBMIT)
    rows += [_errors(s) for s in submit]
    rows += [_ladder(s) for s in submit if s["spec"]["users"] == LADDER_USERS]
    return rows + _capacity(submit)


def _scope(summary: dict) -> str:
    spec = summary["spec"]
    return f"{spec['target']} W={spec['workers']} u={spec['users']}"


def _errors(summary: dict) -> dict:
    errors = (metric(summary, "submit_http_errors") or 0) + (metric(summary, "ladder_errors") or 0)
    detail = f"5xx: {(metric(summary, 'submit_5xx') or 0) + (metric(summary, 'ladder_5xx') or 0):g}"
    return row(
        "submit errors (closed loop + ladder)",
        _scope(summary),
        errors,
        "0",
        "errors",
        errors == 0,
        detail,
    )


def _ladder(summary: dict) -> dict:
    rate = metric(summary, "ladder_first_rate")
    sustained = metric(summary, "submit_sustained_rps") or 0
    return at_most(
        f"submit p99, {LADDER_USERS} users at {rate or 1:g} POST/s each",
        _scope(summary),
        metric(summary, "ladder_first_p99_ms"),
        P99_LIMIT_MS,
        "ms",
        f"sustained (p99 <= 50 ms, no error): {sustained:g} req/s",
    )


def _capacity(submit: list[dict]) -> list[dict]:
    clean = [s for s in submit if not metric(s, "submit_http_errors")]
    best = max(clean, key=lambda s: metric(s, "submit_rps") or 0, default=None)
    if not submit:
        return []
    return [
        at_least(
            "submit capacity with 0 errors (closed loop)",
            "best submit cell" if best is None else _scope(best),
            None if best is None else metric(best, "submit_rps"),
            SUBMIT_JOBS_PER_S,
            "jobs/s",
            "" if best else "every submit cell had errors",
        )
    ]
