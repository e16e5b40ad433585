"""Each scenario family on `db` at tiny size, through run_bench, with the real worker and API
as subprocesses (`subprocess_env`: the test database and this run's queue prefix)."""

import io

import pytest

from apps.bench.plan.defaults import family_cells
from apps.bench.run.cell import RunConfig
from apps.bench.run.families import TINY
from apps.bench.run.session import BenchOptions, run_bench

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CHECKS = {
    "pickup": ("## Pickup latency and noop capacity", "pickup.png"),
    "mixed": ("## Mixed job sizes: head-of-line blocking", "latency.png"),
    "overload": ("## Overload: 1.5x the nominal rate, then stop", "queue_depth.png"),
}


@pytest.mark.parametrize("family", sorted(CHECKS))
def test_family_on_db(family, subprocess_env, settings, tmp_path):
    cells = family_cells(family, ["v3"], [2], repeats=2)
    config = RunConfig(out_dir=tmp_path / "run", env=subprocess_env, api_workers=1)
    options = BenchOptions(cells=cells, config=config, bare_runs=0, families=TINY)
    outcome = run_bench(options, stream=io.StringIO())

    runs = [1, 2]  # every family repeats inside one warm stack
    assert [r["status"] for r in outcome.results] == ["ok"] * len(runs), outcome.results[0]["note"]
    assert [r["spec"]["repeat"] for r in outcome.results] == runs  # one warm stack
    assert outcome.results[0]["metrics"]["cpu_ms_per_job"]  # CpuWindow around each step
    m = outcome.results[0]["metrics"]
    if family == "pickup":
        assert m["probe_jobs"] == TINY.probe_jobs and m["pickup_p99_ms"] is not None
        assert m["burst_done"] == TINY.burst_jobs and m["worker_rss_mb"] > 0
    if family == "mixed":
        assert m["lost"] == 0 and m["long_jobs"] >= 1 and m["hol_penalty_s"] is not None
    if family == "overload":
        assert m["lost"] == 0 and m["arrivals"] > TINY.calibrate_jobs / 2
        assert m["capacity_per_s"] > 0 and m["drain_s"] is not None
        assert outcome.results[0]["series"]["depth"]
    heading, plot = CHECKS[family]
    report = (tmp_path / "run" / "report.md").read_text()
    assert heading in report and "## The answer" in report and "cannot decide" in report
    page = (tmp_path / "run" / "index.html").read_text()
    assert "<table>" in page and page.count('<img src="data:image/png;base64,') >= 1
    assert (tmp_path / "run" / plot).is_file()
