"""A tiny real bench: backend `db`, one worker, noop, 2 users x 3 jobs, on the test database.

The bench's API, worker and locust run as subprocesses with `subprocess_env` (the test
database and this test run's queue prefix).
"""

import io

import pytest

from apps.bench.models import BenchRun
from apps.bench.plan.cells import MatrixParams, build_matrix
from apps.bench.run.cell import RunConfig
from apps.bench.run.session import BenchOptions, run_bench
from apps.jobs.models import OcrJob

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_tiny_bench_end_to_end(subprocess_env, settings, tmp_path):
    params = MatrixParams(
        versions=[],
        backends=["db"],
        workers=[1],
        users=[2],
        noop_users=[2],
        jobs_per_user=3,
        workloads=["noop"],
        deadline_s=60.0,
    )
    cells = build_matrix(params)
    config = RunConfig(
        out_dir=tmp_path / "run",
        env=subprocess_env,
        drain_timeout_s=60,
        api_workers=1,
        burst_jobs=20,
    )
    progress = io.StringIO()
    outcome = run_bench(BenchOptions(cells=cells, config=config, bare_runs=0), stream=progress)

    (result,) = outcome.results
    assert result["status"] == "ok", result["note"]
    m = result["metrics"]
    assert (m["submitted"], m["successes"], m["errors"], m["timeouts"]) == (6, 6, 0, 0)
    assert m["throughput"] > 0 and m["pickup_p50_ms"] is not None
    assert m["submit_p50_ms"] is not None  # read from locust's stats CSV
    assert OcrJob.objects.filter(run_tag=result["tag"], status="DONE").count() == 6
    assert m["burst_done"] == 20 and m["burst_throughput"] > 0  # the capacity burst

    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Successes and errors" in report and "| api:db | 1 |" in report
    for name in ("cells.csv", "jobs.csv", "cells.json", "index.html"):  # no OCR: no plot
        assert (tmp_path / "run" / name).is_file()
    jobs_csv = (tmp_path / "run" / "jobs.csv").read_text().splitlines()
    assert sum(1 for line in jobs_csv if line.endswith(",1")) == 20  # the burst's rows, marked
    run = BenchRun.objects.get()
    assert run.status == "done" and run.cell_count == 1 and run.report_path.endswith("report.md")
    assert "[1/1] api-db-noop-w1-u2x3-r1" in progress.getvalue()


def test_plan_prints_cells_and_an_estimate_within_budget():
    from django.core.management import call_command

    out = io.StringIO()
    call_command("runbench", "--plan", stdout=out)
    text = out.getvalue()
    assert "v0-ocr-w1-u16x1-r1" in text and "api-kafka" not in text  # kafka runs as v6
    assert "v6-pickup+mixed+overload-w2-r1" in text and "within the 30 min budget" in text
