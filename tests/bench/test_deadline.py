"""The deadline sweep's plan, stop rule and table (pure: no processes)."""

import io

from django.core.management import call_command

from apps.bench.measure.aggregate import summarize
from apps.bench.plan.deadline import deadline_cells, stopped
from apps.bench.report.sweep import sweep_table
from apps.bench.run.session import skipped
from tests.bench.fakes import result


def test_cells_ascend_per_row():
    cells = deadline_cells(["v2", "v3"], [1, 2])
    assert [c.users for c in cells[:4]] == [16, 32, 64, 128]
    assert {(c.target, c.workers) for c in cells} == {("v2", 1), ("v2", 2), ("v3", 1), ("v3", 2)}
    assert all(c.workload == "ocr" and c.jobs_per_user == 1 and c.deadline_s == 60 for c in cells)


def test_a_row_stops_after_its_first_n_under_half():
    cells = deadline_cells(["v3"], [1])
    done = [result("v3", "ocr", 1, 0.5, users=16, success_ratio=1.0),
            result("v3", "ocr", 1, 0.5, users=32, success_ratio=0.9),
            result("v3", "ocr", 1, 0.5, users=64, success_ratio=0.45)]  # fmt: skip
    assert not stopped(cells[2], done[:2])
    assert stopped(cells[3], done)  # N = 128 after 64 fell under 50 %
    other_row = deadline_cells(["v3"], [2])[3]
    assert not stopped(other_row, done)


def test_table_shows_ratios_and_stopped_cells():
    cells = deadline_cells(["v3"], [1])
    results = [result("v3", "ocr", 1, 0.5, users=16, success_ratio=1.0),
               result("v3", "ocr", 1, 0.5, users=32, success_ratio=0.4),
               skipped(cells[2], "t", "stopped")]  # fmt: skip
    text = "\n".join(sweep_table(summarize(results)))
    assert "| v3 | 1 | 100 % | 40 % | stopped |" in text


def test_runbench_deadline_takes_its_n_list_from_users():
    out = io.StringIO()
    call_command("runbench", "--family", "deadline", "--versions", "v3", "--workers", "2",
                 "--users", "64,128", "--plan", stdout=out)  # fmt: skip
    text = out.getvalue()
    assert "v3-ocr-w2-u64x1-r1" in text and "v3-ocr-w2-u128x1-r1" in text
    assert "u16x1" not in text and "u32x1" not in text
