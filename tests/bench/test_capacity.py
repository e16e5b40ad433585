"""Submit capacity: the load generator's arithmetic, and one tiny real submit cell (db)."""

import io
import json

import pytest

from apps.bench.measure.aggregate import summarize
from apps.bench.measure.cpu import COMPONENTS
from apps.bench.plan.cells import build_matrix
from apps.bench.report.submit_targets import evaluate_load
from apps.bench.run import loadgen, submit_cells
from apps.bench.run.cell import RunConfig
from apps.bench.run.session import BenchOptions, run_bench
from apps.jobs.models import OcrJob
from tests.bench.fakes import result


def test_summary_counts_statuses_and_percentiles():
    sample = loadgen.Sample(statuses=[202] * 8 + [500, 0], latencies_s=[0.01] * 9 + [1.0])
    sample.wall_s = 2.0
    s = loadgen.summary(sample)
    assert (s["requests"], s["rps"], s["errors"], s["errors_5xx"], s["no_answer"]) == (
        10,
        5.0,
        2,
        1,
        1,
    )
    assert s["status_counts"] == {"202": 8, "500": 1, "0": 1}
    assert s["p50_ms"] == pytest.approx(10.0) and s["p999_ms"] > s["p99_ms"] > s["p50_ms"]


def test_a_step_holds_only_without_errors_within_p99_and_at_rate():
    ok = {"errors": 0, "p99_ms": 30.0, "rps": 60.0}
    assert loadgen.step_holds(ok, offered_rps=64, p99_ms=50)
    assert not loadgen.step_holds({**ok, "p99_ms": 51.0}, offered_rps=64, p99_ms=50)
    assert not loadgen.step_holds({**ok, "errors": 1}, offered_rps=64, p99_ms=50)
    assert not loadgen.step_holds({**ok, "rps": 40.0}, offered_rps=64, p99_ms=50)


def test_request_carries_the_api_auth_headers(monkeypatch):
    monkeypatch.setenv("OCRLAB_API_TOKEN", "s3cret")
    host, port, request = loadgen.build_request("http://127.0.0.1:8123", "/v3/ocr/jobs", {"a": 1})
    assert (host, port) == ("127.0.0.1", 8123)
    assert b"Authorization: Token s3cret\r\n" in request and request.endswith(b'{"a": 1}')
    head = b"HTTP/1.1 202 Accepted\r\ncontent-length: 12\r\nconnection: close\r\n\r\n"
    assert loadgen._parse_head(head) == (202, 12, True)


def test_capacity_metrics_from_a_result():
    result = {
        "closed": {
            "requests": 20,
            "rps": 100.0,
            "p50_ms": 5,
            "p99_ms": 9,
            "p999_ms": 11,
            "errors": 1,
            "errors_5xx": 1,
            "no_answer": 0,
            "status_counts": {"202": 19, "503": 1},
        },
        "ladder": [{"requests": 8, "errors": 0, "errors_5xx": 0, "p99_ms": 7}],
        "sustained_rps": 8.0,
    }
    stats = submit_cells.submit_stats(result)
    assert (stats.requests, stats.failures, stats.p99_ms) == (28, 1, 9)
    m = submit_cells.capacity_metrics(result)
    assert m["submit_rps"] == 100.0 and m["submit_5xx"] == 1 and m["submit_sustained_rps"] == 8.0
    assert submit_cells.capacity_metrics(None) == {} and submit_cells.submit_stats(None) is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_tiny_submit_cell_on_db(subprocess_env, settings, tmp_path):
    params = submit_cells.quick_params("v3")
    params = params.__class__(
        **{**params.__dict__, "users": [4], "noop_users": [4], "jobs_per_user": 3, "workers": [1]}
    )
    cells = build_matrix(params)
    config = RunConfig(
        out_dir=tmp_path / "run",
        env=subprocess_env,
        drain_timeout_s=60,
        api_workers=1,
        submit=submit_cells.SubmitOptions(rates=(1.0,), step_s=1.0),
    )
    outcome = run_bench(BenchOptions(cells=cells, config=config, bare_runs=0), stream=io.StringIO())

    (res,) = outcome.results
    assert res["status"] == "ok", res["note"]
    m = res["metrics"]
    assert m["submit_requests"] == 12 and m["submit_status_counts"] == {"202": 12}
    assert m["submit_5xx"] == 0 and m["submit_no_answer"] == 0 and m["ladder_errors"] == 0
    assert m["submit_rps"] > 0 and m["submit_p999_ms"] >= m["submit_p99_ms"] >= m["submit_p50_ms"]
    assert m["ladder_steps"] == 1 and m["errors"] == 0  # 12 + 4 jobs, every one DONE
    assert OcrJob.objects.filter(run_tag=res["tag"], status="DONE").count() == 16
    assert set(m["cpu_s"]) == set(COMPONENTS) and m["cpu_s"]["loadgen"] > 0
    assert 0 < m["instrument_share"] < 1
    saved = json.loads((tmp_path / "run" / "cells" / res["cell_id"] / "submit.json").read_text())
    assert saved["users"] == 4 and saved["closed"]["requests"] == 12
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Submit capacity" in report and "## Where the cores went" in report
    assert (tmp_path / "run" / "cpu.png").is_file()


def test_load_targets_on_known_summaries():
    submit = dict(
        submit_rps=620.0,
        submit_http_errors=0,
        submit_5xx=0,
        ladder_errors=0,
        ladder_5xx=0,
        ladder_first_rate=1.0,
        ladder_first_p99_ms=30.0,
        submit_sustained_rps=256.0,
    )
    summaries = summarize(
        [
            result("v3", "ocr", 2, instrument_share=0.08),
            result("v3", submit_cells.SUBMIT, 2, users=64, jobs=10, **submit),
            result(
                "v4",
                submit_cells.SUBMIT,
                2,
                users=256,
                jobs=10,
                **{**submit, "submit_5xx": 3, "submit_http_errors": 3},
            ),
        ]
    )
    rows = {(r["check"], r["scope"]): r for r in evaluate_load(summaries)}
    assert (
        rows[("instrument share of the machine (loadgen + bench)", "v3 W=2 u=16")]["met"] is False
    )
    assert rows[("submit errors (closed loop + ladder)", "v3 W=2 u=64")]["met"] is True
    bad = rows[("submit errors (closed loop + ladder)", "v4 W=2 u=256")]
    assert bad["met"] is False and bad["detail"] == "5xx: 3"
    assert rows[("submit p99, 64 users at 1 POST/s each", "v3 W=2 u=64")]["met"] is True
    best = rows[("submit capacity with 0 errors (closed loop)", "v3 W=2 u=64")]
    assert best["measured"] == 620.0 and best["met"] is True
