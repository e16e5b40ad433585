"""apps.bench.measure.metrics on inputs whose answers are known by hand."""

import pytest

from apps.bench.measure.metrics import (
    ERROR,
    SUCCESS,
    TIMEOUT,
    JobTimes,
    SubmitStats,
    cell_metrics,
    classify,
    latency_metrics,
    median_spread,
    outcome_metrics,
    percentile,
    scaling_efficiency,
    throughput,
)


def done(created, finished, queued=None, started=None, attempts=1):
    return JobTimes("DONE", created, queued, started, finished, attempts)


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0, 1.0), (50, 5.5), (95, 9.55), (99, 9.91), (100, 10.0), (25, 3.25)],
)
def test_percentile_interpolates_linearly_between_closest_ranks(q, expected):
    assert percentile(range(1, 11), q) == pytest.approx(expected)


def test_percentile_edge_cases():
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([3, 1, 2], 50) == 2  # input order does not matter
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


def test_classify_success_error_and_both_kinds_of_timeout():
    assert classify(done(0, 60), deadline_s=60) == SUCCESS  # the deadline itself is in time
    assert classify(done(0, 60.5), deadline_s=60) == TIMEOUT  # DONE, but late
    assert classify(JobTimes("QUEUED", 0), deadline_s=60) == TIMEOUT  # never finished
    assert classify(JobTimes("RUNNING", 0, 0, 1), deadline_s=60) == TIMEOUT
    assert classify(JobTimes("FAILED", 0, finished=1), deadline_s=60) == ERROR


def test_throughput_is_finished_jobs_over_first_created_to_last_finished():
    jobs = [done(0, 1), done(1, 2), JobTimes("FAILED", 2, finished=4), JobTimes("QUEUED", 3)]
    assert throughput(jobs) == pytest.approx(3 / 4)
    assert throughput([JobTimes("QUEUED", 0)]) is None
    assert throughput([]) is None


def test_outcome_counts_submits_without_a_row_as_errors():
    jobs = [done(0, 1), done(0, 100), JobTimes("FAILED", 0, finished=2), JobTimes("PENDING", 0)]
    out = outcome_metrics(jobs, 60, SubmitStats(requests=6, failures=2))
    assert out["submitted"] == 6 and out["rows"] == 4 and out["submit_errors"] == 2
    assert (out["successes"], out["errors"], out["timeouts"]) == (1, 3, 2)
    assert out["success_ratio"] == pytest.approx(1 / 6)
    assert out["error_ratio"] == pytest.approx(3 / 6)
    assert out["timeout_ratio"] == pytest.approx(2 / 6)


def test_outcome_without_locust_stats_uses_rows_only():
    out = outcome_metrics([done(0, 1, attempts=2)], 60, None)
    assert out["submitted"] == 1 and out["success_ratio"] == 1.0 and out["retried"] == 1


def test_latency_metrics_in_milliseconds():
    jobs = [done(0, 1.0, queued=0.0, started=0.5), done(0, 3.0, queued=0.1, started=0.1)]
    lat = latency_metrics(jobs)
    assert lat["e2e_p50_ms"] == pytest.approx(2000)
    assert lat["e2e_p99_ms"] == pytest.approx(2980)
    assert lat["pickup_p50_ms"] == pytest.approx(250)
    assert lat["service_p50_ms"] == pytest.approx(1700)  # (500 + 2900) / 2


def test_cell_metrics_merges_submit_latency():
    m = cell_metrics([done(0, 1, 0, 0.5)], deadline_s=60, submit=SubmitStats(1, 0, 12.0, 40.0))
    assert m["submit_p50_ms"] == 12.0 and m["submit_p99_ms"] == 40.0
    assert m["throughput"] == 1.0 and m["successes"] == 1


def test_scaling_efficiency():
    assert scaling_efficiency(1.9, 1.0, 2) == pytest.approx(0.95)
    assert scaling_efficiency(2.0, 1.0, 4) == pytest.approx(0.5)
    assert scaling_efficiency(None, 1.0, 2) is None
    assert scaling_efficiency(1.0, None, 2) is None
    assert scaling_efficiency(1.0, 0.0, 2) is None


def test_median_spread_ignores_missing_values():
    assert median_spread([3.0, None, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    assert median_spread([None]) == (None, None, None)
