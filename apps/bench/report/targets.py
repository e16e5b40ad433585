"""The issue's targets, measured: one row per check with value, target and met / not met.

These are benchmark results for the report, never test assertions.
"""

from __future__ import annotations

from collections import defaultdict

from apps.bench.measure.aggregate import SERIES_FIELDS, find, metric, spec_key

SCALE_2_OVER_1 = 1.9
SCALE_4_OVER_2 = 0.95
OVERHEAD_MIN = 0.95
SUCCESS_MIN = 1.0
NOOP_JOBS_PER_S = 500.0
NOOP_PICKUP_P50_MS = 5.0
NOOP_PICKUP_P99_MS = 50.0
REFERENCE = {"users": 16, "jobs_per_user": 1, "deadline_s": 60.0}  # 16 jobs at once
SUBMIT_USERS = 64
SUBMIT_CHECK = f"API submit p99 at {SUBMIT_USERS} users"


def show(value: float, unit: str) -> str:
    """A bar or a value with its unit: 1.90x, 95 %, 5 ms, 500 jobs/s."""
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value * 100:g} %" if unit == "%" else f"{value:g} {unit}"


def row(
    check: str,
    scope: str,
    measured: float | None,
    target: str,
    unit: str,
    met: bool | None,
    detail: str = "",
) -> dict:
    """A targets-table row; `met` None means not judged (not measured, or no bar)."""
    met = None if measured is None else met
    return {
        "check": check,
        "scope": scope,
        "measured": measured,
        "target": target,
        "unit": unit,
        "met": met,
        "detail": detail,
    }


def at_least(
    check: str, scope: str, value: float | None, bar: float, unit: str, detail: str = ""
) -> dict:
    """Met when value >= bar."""
    met = None if value is None else value >= bar
    return row(check, scope, value, f">= {show(bar, unit)}", unit, met, detail)


def at_most(
    check: str, scope: str, value: float | None, bar: float, unit: str, detail: str = ""
) -> dict:
    """Met when value <= bar."""
    met = None if value is None else value <= bar
    return row(check, scope, value, f"<= {show(bar, unit)}", unit, met, detail)


def evaluate(summaries: list[dict], *, bare_s: float | None, cores: int) -> list[dict]:
    """Every target row the summaries allow: OCR series, then noop, then submit latency."""
    rows = []
    for series in _series(summaries, "ocr").values():
        rows += _ocr_rows(series, bare_s=bare_s, cores=cores)
    for target in dict.fromkeys(s["spec"]["target"] for s in find(summaries, workload="noop")):
        rows += _noop_rows(find(summaries, workload="noop", target=target), cores)
    return rows + _submit_rows(summaries, cores)


def _series(summaries: list[dict], workload: str) -> dict[tuple, dict[int, dict]]:
    series: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for s in find(summaries, workload=workload):
        series[spec_key(s["spec"], SERIES_FIELDS)][s["spec"]["workers"]] = s
    return series


def _scenario(spec: dict) -> str:
    return f"{spec['users']}x{spec['jobs_per_user']} users x jobs, {spec['deadline_s']:g} s"


def _ocr_rows(by_workers: dict[int, dict], *, bare_s: float | None, cores: int) -> list[dict]:
    spec = next(iter(by_workers.values()))["spec"]
    scope, where = spec["target"], _scenario(spec)
    thr = {w: metric(s, "throughput") for w, s in by_workers.items()}
    rows = []
    if spec["kind"] == "queue":
        rows += [
            at_least(
                "OCR throughput, 2 workers / 1 worker",
                scope,
                _div(thr.get(2), thr.get(1)),
                SCALE_2_OVER_1,
                "x",
                where,
            ),
            at_least(
                "OCR throughput, 4 workers / 2 workers",
                scope,
                _div(thr.get(4), thr.get(2)),
                SCALE_4_OVER_2,
                "x",
                where,
            ),
            _overhead_row(scope, thr.get(cores), bare_s, cores),
        ]
    return rows + [_success_row(scope, by_workers.get(2), spec)]


def _overhead_row(scope: str, thr: float | None, bare_s: float | None, cores: int) -> dict:
    ideal = cores / bare_s if bare_s else None
    detail = "bare run_ocr not measured"
    if ideal:
        detail = (
            f"{cores} workers: {thr or 0:.3f} jobs/s vs ideal {ideal:.3f} jobs/s "
            f"(bare run_ocr {bare_s:.2f} s)"
        )
    check = f"Queue overhead: OCR throughput at W = cores ({cores}) / (cores / bare run_ocr)"
    return at_least(check, scope, _div(thr, ideal), OVERHEAD_MIN, "%", detail)


def _success_row(scope: str, cell: dict | None, spec: dict) -> dict:
    check, value = "OCR success within the deadline, 2 workers", metric(cell, "success_ratio")
    if all(spec[k] == v for k, v in REFERENCE.items()):
        return at_least(check, scope, value, SUCCESS_MIN, "%", _scenario(spec))
    detail = _scenario(spec) + "; not the 16 x 1 / 60 s reference"
    return row(check, scope, value, show(SUCCESS_MIN, "%"), "%", None, detail)


def _noop_rows(cells: list[dict], cores: int) -> list[dict]:
    """Capacity (the burst if measured) at the best W; pickup at W = cores, fewest users."""
    target = cells[0]["spec"]["target"]
    burst = any(metric(s, "burst_throughput") for s in cells)
    name = "burst_throughput" if burst else "throughput"
    best, ref = max(cells, key=lambda s: metric(s, name) or 0), _reference_noop(cells, cores)
    how = f"burst of {metric(best, 'burst_jobs') or 0:g} jobs" if burst else "locust users"
    best_where = f"{how}; best cell: {best['spec']['workers']} workers"
    where = f"{ref['spec']['workers']} workers, {ref['spec']['users']} users"
    return [
        at_least(
            "noop throughput", target, metric(best, name), NOOP_JOBS_PER_S, "jobs/s", best_where
        ),
        at_most(
            "noop pickup p50", target, metric(ref, "pickup_p50_ms"), NOOP_PICKUP_P50_MS, "ms", where
        ),
        at_most(
            "noop pickup p99", target, metric(ref, "pickup_p99_ms"), NOOP_PICKUP_P99_MS, "ms", where
        ),
    ]


def _reference_noop(cells: list[dict], cores: int) -> dict:
    """W = cores if run (else the nearest W), at the smallest user count."""
    users = min(s["spec"]["users"] for s in cells)
    at_users = [s for s in cells if s["spec"]["users"] == users]
    return min(at_users, key=lambda s: (abs(s["spec"]["workers"] - cores), s["spec"]["workers"]))


def _submit_rows(summaries: list[dict], cores: int) -> list[dict]:
    cells = [s for s in find(summaries, users=SUBMIT_USERS) if s["spec"]["kind"] == "queue"]
    if not cells:
        detail = f"not measured: no queue cell with {SUBMIT_USERS} users"
        return [row(SUBMIT_CHECK, "-", None, "report", "ms", None, detail)]
    rows = []
    for target in dict.fromkeys(s["spec"]["target"] for s in cells):
        cell = _reference_noop([s for s in cells if s["spec"]["target"] == target], cores)
        detail = f"{cell['spec']['workload']}, {cell['spec']['workers']} workers"
        rows.append(
            row(SUBMIT_CHECK, target, metric(cell, "submit_p99_ms"), "report", "ms", None, detail)
        )
    return rows


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b
