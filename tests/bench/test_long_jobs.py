"""The long-jobs family: jobs longer than a backend's own redelivery timer, on real
services (`db` and `redis`: timer scaled to 3 s, `sleep:6` jobs), and its table (pure)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from apps.bench.report.long_jobs import Row, compute_row, markdown, write
from apps.bench.run.long_jobs import TESTS, params_dict, run_long_jobs
from tests import conftest

JOB_A, JOB_B = "1" * 8 + "-1111-1111-1111-" + "1" * 12, "2" * 8 + "-2222-2222-2222-" + "2" * 12
T0 = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
LOG = f"""
... tasks.process job {JOB_A} started attempt=1 worker=h:1
... tasks.process job {JOB_B} started attempt=1 worker=h:2
... redis_streams took over entry 1-0 (job {JOB_A}) from a silent consumer
... tasks.process job {JOB_A} skipped: not claimable (finished, cancelled, ...)
... tasks.process job {JOB_A} done backend=redis workload=sleep:6 attempt=1 6.0s worker=h:1
... tasks.process job {JOB_B} stale backend=redis workload=sleep:6 attempt=1 6.0s worker=h:2
... tasks.process job {JOB_B} started attempt=2 worker=h:3
"""


def _rows():
    return [
        {"id": JOB_A, "status": "DONE", "attempts": 1, "created_at": T0,
         "finished_at": T0 + timedelta(seconds=6.5)},
        {"id": JOB_B, "status": "RUNNING", "attempts": 2, "created_at": T0, "finished_at": None},
    ]  # fmt: skip


def test_compute_row_counts_executions_deliveries_and_signs():
    row = compute_row(
        Row(backend="redis", mode="defaults", timer="XAUTOCLAIM", setting="min-idle 3 s"),
        job_ids=[JOB_A, JOB_B],
        rows=_rows(),
        log_text=LOG,
        patterns=(r"took over entry", r"PRECONDITION_FAILED"),
    )
    assert row.executions_rows == [1, 2]
    assert row.executions_logs == [1, 2]
    assert row.deliveries_logs == [2, 2]
    assert (row.stored, row.stale, row.done, row.failed) == (1, 1, 1, 0)
    assert row.wall_s is None  # job B never finished
    assert row.signs == {"took over entry": 1}


def test_markdown_and_exports(tmp_path):
    done = compute_row(
        Row(backend="db", mode="lab", timer="lease", owner="row", default="30 s", setting="x"),
        job_ids=[JOB_A], rows=_rows()[:1], log_text=LOG, patterns=(),
    )  # fmt: skip
    lease_only = Row(backend="procrastinate", mode="lab", timer="lease only", note="lease only")
    text = markdown([done, lease_only], command="manage.py runbench --family long-jobs")
    assert "| `db` | lab settings | x | 1 / 1 | 2 | 1 (0 refused) | 1/1 done | 6.5 |" in text
    assert "| `procrastinate` | lab settings | lease only |" in text
    write([done, lease_only], tmp_path, params=params_dict(TESTS))
    data = json.loads((tmp_path / "long_jobs.json").read_text())
    assert [r["backend"] for r in data["rows"]] == ["db", "procrastinate"]
    assert (tmp_path / "long_jobs.csv").read_text().count("\n") == 3


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_db_and_redis_jobs_longer_than_their_timer(tmp_path, monkeypatch):
    """Defaults: the lease (no renewal) and XAUTOCLAIM (entry not refreshed) bring each
    job back mid-run; lab settings: delivered and run once."""
    monkeypatch.setenv("DATABASE_URL", conftest.test_database_url())
    rows = run_long_jobs(out_dir=tmp_path, aliases=["db", "redis"], params=TESTS)
    got = {(r.backend, r.mode): r for r in rows}
    for alias in ("db", "redis"):
        lab = got[alias, "lab"]
        assert lab.note == "", lab.note
        assert lab.executions_rows == [1, 1] and lab.deliveries_logs == [1, 1], lab
        assert (lab.done, lab.stored) == (2, 2), lab
    db = got["db", "defaults"]  # every attempt outlives its lease: none can store
    assert all(n >= 2 for n in db.executions_rows) and db.stored == 0, db
    redis = got["redis", "defaults"]  # taken over mid-run; the job-row guard skips it
    assert redis.deliveries_logs == [2, 2] and redis.executions_rows == [1, 1], redis
    assert redis.signs and redis.stored == 2, redis
