"""The families' pure computations, the plan's budget, chaos.json shapes, stray workers."""

import os

import pytest

from apps.bench.measure import family_metrics as fm
from apps.bench.plan.cells import QUEUE_VERSIONS
from apps.bench.plan.defaults import (
    BUDGET_S,
    ROUND_JOBS,
    estimate_total_s,
    full_plan,
    quick_plan,
)
from apps.bench.report.chaos_table import load_chaos, normalize, summary
from apps.bench.run.families import FULL, QUICK, _mixed_schedule, steps
from apps.bench.run.stray import refusal, stray_workers

EXTRA = ["celery-redis", "dramatiq", "dramatiq-redis"]


def row(created, started, finished, status="DONE", workload="sleep:0.05", attempts=1):
    return {
        "status": status,
        "workload": workload,
        "attempts": attempts,
        "created_at": created,
        "queued_at": created,
        "started_at": started,
        "finished_at": finished,
    }


def test_queue_depth_counts_created_but_not_started():
    rows = [row(0.0, 0.1, 0.2), row(0.0, 1.0, 1.1), row(0.5, 2.0, 2.1)]
    depth = fm.queue_depth(rows, step_s=0.5, origin=0.0)
    assert depth[:5] == [[0.0, 2], [0.5, 2], [1.0, 1], [1.5, 1], [2.0, 0]]


def test_mixed_penalty_is_short_p95_minus_own_service():
    short = [row(i, i + 0.01, i + 0.06) for i in range(19)] + [row(19, 21.0, 21.05)]
    long = [row(0, 0.01, 2.01, workload="sleep:2")]
    m = fm.mixed_metrics(short + long, short="sleep:0.05")
    assert (m["short_jobs"], m["long_jobs"], m["lost"]) == (20, 1, 0)
    assert m["short_service_p50_s"] == pytest.approx(0.05)
    assert m["hol_penalty_s"] == pytest.approx(m["short_p95_s"] - 0.05)
    assert m["short_max_s"] == pytest.approx(2.05)


def test_overload_drain_lost_and_growth():
    rows = [row(i * 0.1, i * 0.2, i * 0.2 + 0.2) for i in range(10)]
    rows.append(row(1.0, None, None, status="PENDING"))
    m = fm.overload_metrics(rows, arrivals=11, stopped_at=1.0, rate_per_s=10.0)
    assert (m["done"], m["lost"]) == (10, 1)
    assert m["drain_s"] == pytest.approx(1.0 + 0.8 + 0.2 - 1.0 + 0.0)  # last finished 2.0
    assert m["latency_growth"] > 1  # later arrivals wait longer
    assert fm.drain_rate(rows[:10]) == pytest.approx(10 / 2.0)


def test_full_plan_covers_the_matrix_within_budget():
    cells = full_plan(EXTRA)
    ocr = [c for c in cells if c.workload == "ocr"]
    assert {c.target for c in ocr} == {
        "v0",
        "v1",
        "v2",
        *QUEUE_VERSIONS,
        *[f"api:{b}" for b in EXTRA],
    }
    reference = [c for c in ocr if c.kind == "sync" and c.repeat == 1 and c.users == 16]
    assert {(c.target, c.workers) for c in reference} == {
        ("v0", 1), ("v1", 1), ("v2", 1), ("v2", 2), ("v2", 4)
    }  # fmt: skip
    assert all((c.jobs_per_user, c.deadline_s) == (1, 60.0) for c in ocr)
    # the throughput criterion: every queue at W = 2 in 3 rounds, round 1 of all first
    rounds = [c for c in ocr if c.workers == 2 and c.users == ROUND_JOBS]
    assert [c.repeat for c in rounds] == sorted(c.repeat for c in rounds)
    assert len(rounds) == 3 * (len(QUEUE_VERSIONS) + len(EXTRA))
    floor = [c for c in ocr if c.kind == "queue" and c.workers == 1]
    assert len(floor) == len(QUEUE_VERSIONS) + len(EXTRA)  # the noise floor
    chains = [c for c in cells if "+" in c.family]
    assert len(chains) == len(QUEUE_VERSIONS) + len(EXTRA) and all(c.repeats >= 3 for c in chains)
    chained = [step.family for step in steps(chains[0])]
    assert chained == ["pickup", "mixed", "overload"]
    assert estimate_total_s(cells, FULL, ocr_job_s=2.0, cores=2) <= BUDGET_S
    assert estimate_total_s(quick_plan(EXTRA), QUICK, ocr_job_s=2.0, cores=2) <= 5 * 60


def test_mixed_schedule_interleaves_long_and_short():
    events = _mixed_schedule(FULL)
    kinds = [w for _, w in events]
    long_n, short_n = FULL.mixed_s / FULL.long_every_s, FULL.mixed_s / FULL.short_every_s
    assert kinds.count(FULL.long_workload) == long_n and kinds.count(FULL.short_workload) == short_n
    assert [t for t, _ in events] == sorted(t for t, _ in events)


def test_chaos_shapes_are_normalized(tmp_path):
    rows = [
        {"backend": "db", "fault": "kill", "lost": 0, "doubled": 1, "stuck": 0, "recovery_s": 3}
    ]
    nested = {"db": {"kill": {"lost": 0, "doubled": 1, "stuck": 0, "recovery_s": 3}}}
    assert normalize(rows) == normalize({"rows": rows}) == normalize(nested)
    assert summary(normalize(rows))["db"] == {
        "faults": 1, "lost": 0, "doubled": 1, "stuck": 0, "recovery_s": 3.0
    }  # fmt: skip
    assert load_chaos(tmp_path / "missing.json") == []


def test_stray_workers_are_found_from_live_pid_files(tmp_path):
    (tmp_path / "worker-db.pid").write_text(str(os.getpid()))
    (tmp_path / "worker-gone.pid").write_text("999999999")
    alive = stray_workers(tmp_path)
    assert alive == {"worker-db.pid": os.getpid()}
    assert "scripts/stack.sh stop-workers" in refusal(alive)
