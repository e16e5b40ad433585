"""*Pure*: the decision. One row per backend, one column per property, judged by one rule.

One criterion per property, each from its own cells (nothing derived from another):
OCR throughput at W = cores, noop capacity, pickup p99 at idle, head-of-line penalty,
overload drain, CPU per noop job (repeats, judged by `decide.rule`: median of repeats,
3 MAD and a minimum effect), and from the chaos run the
defects (lost + stored twice + stuck: must be zero), jobs executed twice and recovery time.
Every sample is one repeat of a cell (`results`), so repeats interleaved across backends
count as such. The noise floor is the spread of OCR throughput at W = 1 across the queue
backends, where the queue cannot matter; it widens the OCR criterion's minimum effect.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from apps.bench.decide.rule import Samples, differs, min_effect, relative_spread, samples
from apps.jobs import versions

SYNC_NAMES = {v.name: v.short for v in versions.VERSIONS if v.kind == versions.SYNC}
BEST, SAME, WORSE, UNDECIDED, OK, FAIL = "best", "no difference", "worse", "?", "ok", "fails"
REPEATED, COUNT, ZERO = "repeated", "count", "zero"


@dataclass(frozen=True)
class Criterion:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    kind: str = REPEATED  # REPEATED: bootstrap rule; COUNT: exact, abs_floor apart; ZERO: 0 or fail
    abs_floor: float = 0.0  # the smallest difference that counts, in `unit`


CRITERIA = (
    Criterion("ocr", "OCR jobs/s (W=cores)", "jobs/s", True),
    Criterion("capacity", "noop capacity", "jobs/s", True),
    Criterion("pickup_p99", "pickup p99 at idle", "ms", False, abs_floor=5.0),
    Criterion("hol", "head-of-line penalty", "s", False, abs_floor=0.1),
    Criterion("drain", "overload drain", "s", False, abs_floor=0.5),
    Criterion("cpu", "CPU per noop job", "ms", False, abs_floor=2.0),
    Criterion("defects", "lost + stored twice + stuck", "jobs", False, kind=ZERO),
    # one chaos run: a total, not repeats, so "cannot decide" until chaos runs 3 times
    Criterion("executed_twice", "executed twice (chaos)", "jobs", False, abs_floor=2),
    Criterion("recovery", "recovery after faults", "s", False, abs_floor=2.0),
)
BY_KEY = {c.key: c for c in CRITERIA}


def display_name(spec: dict) -> str:
    """Backend alias for queue targets, a readable name for V0-V2."""
    if spec["kind"] == versions.SYNC:
        return SYNC_NAMES.get(spec["target"], spec["target"])
    return spec["backend"]


def _metric(rows: list[dict], family: str, name: str, workers: int, workload=None) -> list:
    return [
        r["metrics"].get(name)
        for r in rows
        if r["spec"].get("family", "load") == family
        and r["spec"]["workers"] == workers
        and (workload is None or r["spec"]["workload"] == workload)
    ]


def _cpu(rows: list[dict], workers: int) -> list[float]:
    return [
        sum(v for v in r["metrics"]["cpu_ms_per_job"].values() if v is not None)
        for r in rows
        if r["spec"].get("family") == "pickup"
        and r["spec"]["workers"] == workers
        and r["metrics"].get("cpu_ms_per_job")
    ]


SOURCES: dict[str, Callable[[list[dict], int], list]] = {
    "ocr": lambda rows, w: _metric(rows, "load", "throughput", w, "ocr"),
    "capacity": lambda rows, w: _metric(rows, "pickup", "burst_throughput", w),
    "pickup_p99": lambda rows, w: _metric(rows, "pickup", "pickup_p99_ms", w),
    "hol": lambda rows, w: _metric(rows, "mixed", "hol_penalty_s", w),
    "drain": lambda rows, w: _metric(rows, "overload", "drain_s", w),
    "cpu": _cpu,
}


def _chaos(chaos_rows: list[dict], backend: str) -> dict[str, Samples | None]:
    rows = [r for r in chaos_rows if r.get("backend") == backend]
    mine = [r for r in rows if not r.get("skipped")]
    errored = [r for r in rows if r.get("skipped") and _errored(r)]
    if not mine or errored:  # a fault that could not run leaves the backend unmeasured
        return {"defects": None, "executed_twice": None, "recovery": None}

    def total(*keys: str) -> Samples:
        return Samples((float(sum((r.get(k) or 0) for r in mine for k in keys)),))

    for r in mine:  # rows straight from `manage.py chaos` name it stored_twice
        r.setdefault("doubled", r.get("stored_twice"))
    return {
        "defects": total("lost", "doubled", "stuck"),
        "executed_twice": total("executed_twice"),
        "recovery": samples([r.get("recovery_s") for r in mine]),
    }


def _errored(row: dict) -> bool:
    """A chaos cell that did not run because of an error (not one that does not apply)."""
    return not str(row["skipped"]).startswith("n/a")


def backend_samples(results: list[dict], context: dict) -> dict[str, dict[str, Samples | None]]:
    """{backend name: {criterion key: Samples or None}} from every ok repeat of the run."""
    cores = (context.get("machine") or {}).get("nproc") or 2
    by_name: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        if r["status"] == "ok":
            by_name[display_name(r["spec"])].append(r)
    out = {}
    for name, rows in by_name.items():
        values = {key: samples(source(rows, cores)) for key, source in SOURCES.items()}
        if rows[0]["spec"]["kind"] != versions.SYNC:
            values.update(_chaos(context.get("chaos") or [], rows[0]["spec"]["backend"]))
        out[name] = values
    return out


def noise_floor(results: list[dict]) -> dict:
    """OCR throughput at W = 1 per queue backend (the queue cannot matter there): the
    relative spread of their medians, and how many backends it rests on."""
    per: dict[str, list[float]] = defaultdict(list)
    for r in results:
        spec = r["spec"]
        if (
            r["status"] == "ok"
            and spec["kind"] != versions.SYNC
            and spec.get("family", "load") == "load"
            and spec["workload"] == "ocr"
            and spec["workers"] == 1
            and r["metrics"].get("throughput")
        ):
            per[spec["backend"]].append(r["metrics"]["throughput"])
    medians = [Samples(tuple(v)).median for v in per.values()]
    return {"rel": relative_spread(medians), "backends": len(medians), "medians": medians}


def judge(values: dict[str, Samples | None], criterion: Criterion, noise_rel: float = 0.0):
    """{backend: verdict} among the backends that have the figure."""
    have = {n: v for n, v in values.items() if v is not None}
    if not have:
        return {}
    if criterion.kind == ZERO:
        return {n: OK if v.median == 0 else FAIL for n, v in have.items()}
    pick = max if criterion.higher_is_better else min
    best_name = pick(have, key=lambda n: have[n].median)
    best = have[best_name]
    effect = min_effect(best.median, abs_floor=criterion.abs_floor, noise_rel=noise_rel)
    out = {}
    for name, v in have.items():
        if name == best_name:
            out[name] = BEST
        elif criterion.kind == COUNT:
            out[name] = WORSE if abs(v.median - best.median) >= effect else SAME
        else:
            verdict = differs(v, best, effect=effect)
            out[name] = UNDECIDED if verdict is None else (WORSE if verdict else SAME)
    return out


def decide(summaries: list[dict], results: list[dict], context: dict) -> dict:
    """Values, verdicts per criterion, the noise floor, and the pick with its reasons."""
    values = backend_samples(results, context)
    floor = noise_floor(results)
    verdicts = {
        c.key: judge(
            {n: v.get(c.key) for n, v in values.items()},
            c,
            noise_rel=(floor["rel"] or 0.0) if c.key == "ocr" else 0.0,
        )
        for c in CRITERIA
    }
    decision = {"values": values, "verdicts": verdicts, "noise": floor}
    decision["pick"] = pick(decision)
    return decision


def queue_names(decision: dict) -> list[str]:
    return [n for n in decision["values"] if n not in SYNC_NAMES.values()]


def pick(decision: dict) -> dict:
    """Among the backends measured on every decided criterion: those never worse and never
    failing, else those with the fewest losses. A backend missing a decided criterion is
    no pick (`unmeasured` says which); absence is not a win."""
    verdicts = decision["verdicts"]
    names = queue_names(decision)
    decided = [
        c.key for c in CRITERIA if any(v in (WORSE, SAME, FAIL) for v in verdicts[c.key].values())
    ]
    losses = {
        n: [c.key for c in CRITERIA if verdicts[c.key].get(n) in (WORSE, FAIL)] for n in names
    }
    unmeasured = {n: [k for k in decided if n not in verdicts[k]] for n in names}
    complete = [n for n in names if not unmeasured[n]]
    out = {"names": [], "losses": losses, "decided": decided, "unmeasured": unmeasured}
    if complete and decided:
        fewest = min(len(losses[n]) for n in complete)
        out["names"] = sorted(n for n in complete if len(losses[n]) == fewest)
    return out
