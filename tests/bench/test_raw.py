"""The raw family: noop messages through a backend's own client, no job rows, on real
services (`redis`; `dramatiq-redis` and `procrastinate` for frameworks), and its table (pure)."""

import csv
import json
import os

import pytest

from apps.bench.report.export import write_jobs_csv
from apps.bench.report.raw_table import markdown, table_rows, write
from apps.bench.run.burst import burst_rows
from apps.bench.run.raw import RawParams, lifecycle_by_cell, run_raw_family
from tasks.backends.base import Backend
from tests import conftest

TINY = RawParams(messages=30, workers=(2,), ready_timeout_s=20, warmup_timeout_s=20,
                 drain_timeout_s=20, consumer_max_s=60)  # fmt: skip
ALIASES = ("redis", "dramatiq-redis", "procrastinate")


def _raw_row(alias="redis", workers=1, rate=1000.0, status="ok"):
    per = {"workers": 0.2, "broker": 0.1, "postgres": 0.0, "bench": 0.05, "other": 1.0}
    return {"cell_id": f"raw-{alias}-w{workers}", "alias": alias, "workers": workers,
            "status": status, "note": "" if status == "ok" else "not measured: why",
            "metrics": {"msgs_per_s": rate, "publish_per_s": 2000.0, "cpu_ms_per_job": per}
            if status == "ok" else {}}  # fmt: skip


def _pickup(alias, workers, rate, cpu):
    spec = {"family": "pickup", "backend": alias, "workers": workers}
    per = {"workers": cpu, "postgres": 4.0, "bench": 5.0, "other": 1.0}
    metrics = {"burst_throughput": rate, "cpu_ms_per_job": per}
    return {"status": "ok", "spec": spec, "metrics": metrics}


def test_lifecycle_takes_median_capacity_and_system_cpu_of_pickup_cells():
    results = [_pickup("redis", 1, r, c) for r, c in ((60, 10), (70, 11), (80, 12))]
    life = lifecycle_by_cell(results + [{"status": "ok", "spec": {"family": "mixed"}}])
    assert life == {("redis", 1): {"jobs_per_s": 70, "cpu_ms_per_job": 15.0, "repeats": 3}}


def test_table_sets_raw_beside_lifecycle_and_says_not_measured(tmp_path):
    rows = [_raw_row(), _raw_row(workers=2, rate=1800.0), _raw_row("db", status="skipped")]
    flat = table_rows(rows, {("redis", 2): {"jobs_per_s": 80.0, "cpu_ms_per_job": 20.0}})
    assert flat[0]["cpu_ms_system"] == pytest.approx(0.3) and flat[0]["cpu_ms_instrument"] == 0.05
    assert flat[2]["cpu_ms_system"] is None and flat[2]["note"] == "not measured: why"
    text = "\n".join(markdown(flat, command="manage.py runbench --family raw"))
    assert "What the queue costs vs what the lab costs" in text
    assert "the queue itself does 1,800 msg/s at 0.30 CPU-ms" in text
    assert "bookkeeping makes it 80 jobs/s at 20.0 CPU-ms" in text
    assert "| db | 1 | – |" in text and "not measured: why" in text
    write(rows, tmp_path, command="x", params={"messages": 30})
    assert json.loads((tmp_path / "cells.json").read_text())["results"] == rows
    with (tmp_path / "cells.csv").open() as handle:
        assert [r["alias"] for r in csv.DictReader(handle)] == ["redis", "redis", "db"]


def test_a_backend_without_a_raw_queue_says_why():
    backend = Backend("x")
    assert backend.raw_queue() is None and backend.raw_note.startswith("not measured")


def test_burst_rows_go_to_jobs_csv_with_a_marker(tmp_path):
    job = {"id": "j", "status": "DONE", "created_at": 1.0, "started_at": 1.5, "finished_at": 2.0}
    results = [{"cell_id": "c", "tag": "t", "jobs": [], "burst_jobs": [job]}]
    write_jobs_csv(tmp_path / "jobs.csv", results)
    with (tmp_path / "jobs.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["tag"] == "t-burst" and row["burst"] == "1" and row["total_s"] == "1.0"


@pytest.mark.django_db
def test_burst_rows_read_the_burst_tag():
    assert burst_rows("no-such-tag") == []


@pytest.mark.slow
@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.django_db(transaction=True)
def test_raw_round_trip_on_real_services(alias, tmp_path):
    env = {**os.environ, "DATABASE_URL": conftest.test_database_url()}
    (row,) = run_raw_family(aliases=[alias], params=TINY, env=env, log_dir=tmp_path)
    assert (row["alias"], row["workers"], row["status"]) == (alias, 2, "ok"), row["note"]
    m = row["metrics"]
    assert m["messages"] == 30 and m["msgs_per_s"] > 0 and m["drain_s"] > 0
    assert m["cpu_ms_per_job"]["workers"] >= 0 and m["instrument_share"] is not None
