"""`runbench --engine-mode seed`: the cells carry the mode, their processes get it, the
report labels their rows."""

import io

import pytest
from django.core.management import CommandError, call_command

from apps.bench.management.commands.runbench import with_engine
from apps.bench.measure.aggregate import summarize
from apps.bench.report.markdown import seed_table
from apps.bench.run.processes import cell_env
from tests.bench.fakes import result
from tests.bench.test_processes import spec

SEED_ROW = "v2 (seed engine: ocrmypdf CLI, default threads)"


def test_cells_default_to_the_lab_engine_and_their_processes_get_it():
    lab = spec()
    assert lab.engine == "lab"
    assert cell_env(lab, {"OCR_ENGINE_MODE": "seed"}, [])["OCR_ENGINE_MODE"] == "lab"


@pytest.mark.parametrize("kind", ["sync", "queue"])
def test_seed_cells_pass_the_mode_to_their_ocr_servers_and_workers(kind):
    [seed] = with_engine([spec(kind=kind)], "seed")
    assert seed.engine == "seed" and seed.as_dict()["engine"] == "seed"
    env = cell_env(seed, {"PATH": "/bin"}, [8101] if kind == "sync" else [])
    assert env["OCR_ENGINE_MODE"] == "seed"  # one env for OCR servers, workers and API
    assert "-seed-" in seed.cell_id and seed.cell_id != spec(kind=kind).cell_id


def test_runbench_plans_seed_cells():
    out = io.StringIO()
    args = ["--versions", "v2", "--backends", "none", "--workers", "1,2", "--workload", "ocr"]
    call_command("runbench", *args, "--users", "16", "--jobs-per-user", "1",
                 "--engine-mode", "seed", "--plan", stdout=out)  # fmt: skip
    assert "v2-ocr-seed-w1-u16x1-r1" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("runbench", *args, "--engine-mode", "fast", "--plan", stdout=out)


def test_seed_table_labels_seed_engine_rows():
    lab = result("v2", "ocr", 1, 0.6, e2e_max_ms=25_000.0)
    seed = result("v2", "ocr", 1, 0.1, successes=4, success_ratio=0.25, e2e_max_ms=60_000.0)
    seed["spec"]["engine"] = "seed"
    lines = seed_table(summarize([lab, seed]))
    rows = [line for line in lines if line.startswith("| 1 ")]
    assert any(f"| {SEED_ROW} | 25.0 % | 60.0 s |" in row for row in rows)
    assert any("| v2 | 100.0 % | 25.0 s |" in row for row in rows)
    assert "Rows marked seed engine" in "\n".join(lines)


def test_seed_only_run_does_not_claim_the_lab_finishes_in_time():
    seed = result("v2", "ocr", 1, 0.1, successes=4, success_ratio=0.25, e2e_max_ms=60_000.0)
    seed["spec"]["engine"] = "seed"
    text = "\n".join(seed_table(summarize([seed])))
    assert "well inside the deadline" not in text and "Rows marked seed engine" in text
