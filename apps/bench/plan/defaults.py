"""The default run of `make bench` (and `--quick`): which cells, and how long they take.

The whole comparison fits in 30 minutes on 2 cores because
- the reference scenario (16 jobs submitted at once, 60 s deadline, the seed study's)
  runs once for V0, V1 (W = 1: one OCR server whatever W is) and V2 (W = 1, 2, 4);
- OCR at W = cores (the throughput criterion) runs ROUNDS times with ROUND_JOBS jobs, the
  rounds interleaved across targets (round 1 of every target, then round 2, ...), so a
  slow minute of the machine does not land on one backend;
- every queue runs OCR once at W = 1 (FLOOR_JOBS jobs): there the queue cannot matter, so
  the spread of those cells is the run's noise floor;
- the short cells (pickup + capacity, mixed sizes) run 3 repeats inside one warm stack,
  and at W = 2 the pickup, mixed and overload families share that stack;
- the families generate load from the bench process (no locust start per repeat).
"""

from __future__ import annotations

import math

from apps.bench.plan.cells import QUEUE_VERSIONS, SYNC_VERSIONS, CellSpec, target_spec
from apps.bench.run.families import FamilyParams, steps
from apps.jobs import versions
from apps.jobs.workloads import workload_seconds

REFERENCE_JOBS = 16
REFERENCE_DEADLINE_S = 60.0
OCR_JOB_S = 2.0  # one sample.pdf job on one core under the bench's own load (bare ~1.2-1.9 s)
STACK_S = 8.0  # start runworker + API, warm-up round trip, stop (measured ~6-8 s)
SYNC_STACK_S = 14.0  # W OCR servers + API (measured ~12-14 s under load)
LOCUST_S = 5.0  # locust start, spawn, poll tail, stop
NOOP_JOB_S = 0.05  # one noop probe job end to end (pickup + bookkeeping + DB poll)
BURST_PER_S = 150.0  # slowest backend's burst drain rate seen
BUDGET_S = 30 * 60.0
SINGLE_SERVER = tuple(v.name for v in versions.VERSIONS if v.one_server)  # V0, V1: one server
KAFKA_NOTE = (
    "A Kafka consumer group restarted at once may wait out the old members' session before "
    "it gets partitions (seen: ~60 s); cells of one target are kept apart."
)
CHAIN = "pickup+mixed+overload"  # at W = 2: three families in one warm stack


ROUNDS = 3  # repeats of the OCR throughput cells (W = cores), interleaved
ROUND_JOBS = 8  # jobs at once per throughput cell: 4 per worker at W = 2
FLOOR_JOBS = 6  # jobs at once per noise-floor cell (W = 1)


def ocr_cells(
    names: list[str], workers: list[int], repeat: int = 1, jobs: int = REFERENCE_JOBS
) -> list[CellSpec]:
    """`jobs` users x 1 job, all at once, 60 s deadline (the reference scenario at 16)."""
    cells = []  # workers outermost: a target's restarts are minutes apart (see KAFKA_NOTE)
    for w in workers:
        for name in names:
            target, kind, version, backend = target_spec(name)
            if name in SINGLE_SERVER and w != 1:
                continue
            cells.append(
                CellSpec(
                    target, kind, version, backend, w, jobs, 1, "ocr",
                    REFERENCE_DEADLINE_S, repeat,
                )
            )  # fmt: skip
    return cells


def family_cells(family: str, names: list[str], workers: list[int], repeats: int) -> list[CellSpec]:
    """One cell per queue target and W of a scenario family (apps.bench.run.families)."""
    cells = []
    for w in workers:
        for name in names:
            target, kind, version, backend = target_spec(name)
            cells.append(
                CellSpec(target, kind, version, backend, w, 0, 0, family, 60.0, 1, family, repeats)
            )
    return cells


def full_plan(extra_backends: list[str], cores: int = 2) -> list[CellSpec]:
    """`make bench`: the reference scenario (V0, V1 at W = 1; V2 at W = 1, 2, 4), the noise
    floor (every queue at W = 1), OCR throughput at W = cores in ROUNDS interleaved rounds
    (every queue: the pick is among them), then the families at W = cores, 3 repeats each."""
    queue = list(QUEUE_VERSIONS) + list(extra_backends)
    rounds = [c for r in range(1, ROUNDS + 1) for c in ocr_cells(queue, [cores], r, ROUND_JOBS)]
    return (
        ocr_cells(list(SYNC_VERSIONS), [1, 2, 4])
        + ocr_cells(queue, [1], jobs=FLOOR_JOBS)
        + rounds
        + family_cells(CHAIN, queue, [cores], repeats=3)
    )


def quick_plan(extra_backends: list[str]) -> list[CellSpec]:
    """`--quick` (make demo): OCR on V2 and V3, pickup everywhere, mixed/overload on two."""
    queue = list(QUEUE_VERSIONS) + list(extra_backends)
    ocr = [
        CellSpec(t, k, v, b, w, 4, 1, "ocr", REFERENCE_DEADLINE_S)
        for (t, k, v, b) in (target_spec("v2"), target_spec("v3"))
        for w in (1, 2)
    ]
    two: list[str] = [n for n in ("v3", "v6") if n in queue]
    return (
        ocr
        + family_cells("pickup", [n for n in queue if n not in two], [2], repeats=3)
        + family_cells(CHAIN, two, [2], repeats=3)
    )


def estimate_s(spec: CellSpec, params: FamilyParams, *, ocr_job_s: float, cores: int) -> float:
    """Expected wall seconds of one cell (all its repeats)."""
    busy = max(1, min(spec.workers, cores))
    if spec.family == "load":
        stack = SYNC_STACK_S if spec.kind == versions.SYNC else STACK_S
        warm = math.ceil(2 / busy) * ocr_job_s if spec.workload == "ocr" else 1.0
        work = spec.jobs * (ocr_job_s if spec.workload == "ocr" else NOOP_JOB_S) / busy
        return stack + warm + LOCUST_S + work
    return STACK_S + sum(s.repeats * _family_step_s(s, params) for s in steps(spec))


def _family_step_s(spec: CellSpec, params: FamilyParams) -> float:
    if spec.family == "pickup":
        return params.probe_jobs * NOOP_JOB_S + params.burst_jobs / BURST_PER_S + 1.0
    if spec.family == "mixed":
        return params.mixed_s + workload_seconds(params.long_workload, NOOP_JOB_S) + 1.0
    job_s = workload_seconds(params.overload_workload, NOOP_JOB_S)
    calibrate = params.calibrate_jobs * job_s / max(1, spec.workers)
    drain = (params.overload_factor - 1.0) * params.overload_s
    return calibrate + params.overload_s + drain + 2.0


def plan_lines(
    cells: list[CellSpec], params: FamilyParams, *, ocr_job_s: float, cores: int
) -> list[str]:
    """One line per cell with its estimate, then totals per family and the budget check."""
    totals: dict[str, float]
    lines, totals = [], {}
    for spec in cells:
        seconds = estimate_s(spec, params, ocr_job_s=ocr_job_s, cores=cores)
        family = spec.workload if spec.family == "load" else spec.family
        totals[family] = totals.get(family, 0.0) + seconds
        runs = f" x{spec.repeats} warm" if spec.repeats > 1 else ""
        lines.append(f"{spec.cell_id:<44} ~{seconds:5.0f} s{runs}")
    total = sum(totals.values()) + (4 * ocr_job_s if "ocr" in totals else 0.0)
    lines.append("by family: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in totals.items()))
    verdict = "within" if total <= BUDGET_S else "OVER"
    lines.append(
        f"{len(cells)} cells, estimated {total / 60:.1f} min ({verdict} the "
        f"{BUDGET_S / 60:.0f} min budget; OCR at {ocr_job_s:.1f} s/job/core, {cores} cores)"
    )
    return lines


def estimate_total_s(
    cells: list[CellSpec], params: FamilyParams, *, ocr_job_s: float, cores: int
) -> float:
    """The planned wall time of the cells, seconds."""
    return sum(estimate_s(c, params, ocr_job_s=ocr_job_s, cores=cores) for c in cells)
