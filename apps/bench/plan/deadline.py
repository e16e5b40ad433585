"""The deadline sweep (`runbench --family deadline`): where the seed's 60 s deadline bites.

N OCR jobs submitted at once (N users x 1 job, 60 s deadline), N = 16, 32, 64, 128, per
target and W; a row (target, W) stops at the first N that finished fewer than half its jobs
in time (larger N only fail more, at minutes per cell). Targets: V2 and one queue of each
broker family (V3 PostgreSQL, V4 Redis, V5 RabbitMQ, V6 Kafka).
"""

from __future__ import annotations

from apps.bench.plan.cells import CellSpec, target_spec

SIZES = (16, 32, 64, 128)
WORKERS = (1, 2)
TARGETS = ("v2", "v3", "v4", "v5", "v6")
DEADLINE_S = 60.0
STOP_BELOW = 0.5  # a row stops after the first N with success ratio below this


def deadline_cells(
    targets: list[str], workers: list[int], sizes: tuple[int, ...] = SIZES
) -> list[CellSpec]:
    """Per target and W, one OCR cell per N in ascending order (the stop rule needs it)."""
    cells = []
    for name in targets:
        target, kind, version, backend = target_spec(name)
        for w in workers:
            for n in sorted(sizes):
                cells.append(CellSpec(target, kind, version, backend, w, n, 1, "ocr", DEADLINE_S))
    return cells


def row_of(spec: dict) -> tuple:
    return (spec["target"], spec["workers"], spec["deadline_s"], spec["jobs_per_user"])


def stopped(spec: CellSpec, results: list[dict]) -> bool:
    """True when an earlier, smaller N of the same row finished under STOP_BELOW in time."""
    mine = row_of(spec.as_dict())
    return any(
        row_of(r["spec"]) == mine
        and r["spec"]["users"] < spec.users
        and r["status"] == "ok"
        and (r["metrics"].get("success_ratio") or 0.0) < STOP_BELOW
        for r in results
    )
