"""The chaos table computed from known job rows and worker log lines (no services)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from apps.bench.chaos.local import NotLocal, require_local
from apps.bench.chaos.summary import Cell, compute_cell, render_markdown, render_text, write_results
from tasks.backends.services import Service

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
IDS = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(6)]


def row(i: int, status: str, *, attempts=1, created_s=0.0, finished_s=None) -> dict:
    finished = None if finished_s is None else T0 + timedelta(seconds=finished_s)
    return {
        "id": IDS[i],
        "status": status,
        "attempts": attempts,
        "created_at": T0 + timedelta(seconds=created_s),
        "finished_at": finished,
    }


def line(i: int, outcome: str) -> str:
    return f"2026-01-01 INFO tasks.process job {IDS[i]} {outcome} backend=redis attempt=1\n"


def cell_of(rows, log_text="", submitted=None, fault_end_s=5.0) -> Cell:
    return compute_cell(
        backend="redis",
        fault="sigkill",
        submitted=submitted if submitted is not None else [r["id"] for r in rows],
        rows=rows,
        log_text=log_text,
        fault_at=T0 + timedelta(seconds=2),
        fault_end=T0 + timedelta(seconds=fault_end_s),
    )


def test_clean_run_counts_nothing_and_recovery_is_fault_to_last_finish():
    rows = [row(0, "DONE", finished_s=3), row(1, "DONE", created_s=1, finished_s=9.5)]
    cell = cell_of(rows, line(0, "done") + line(1, "done"))
    assert (cell.jobs, cell.lost, cell.stuck, cell.executed_twice, cell.stored_twice) == (
        2,
        0,
        0,
        0,
        0,
    )
    assert cell.recovery_s == 7.5
    assert cell.ok


def test_jobs_created_after_the_fault_do_not_count_for_recovery():
    rows = [row(0, "DONE", finished_s=4), row(1, "DONE", created_s=8, finished_s=30)]
    assert cell_of(rows).recovery_s == 2.0


def test_failed_and_missing_jobs_are_lost_unfinished_are_stuck():
    rows = [row(0, "FAILED", finished_s=4), row(1, "RUNNING"), row(2, "QUEUED")]
    cell = cell_of(rows, submitted=[IDS[0], IDS[1], IDS[2], IDS[3]])
    assert (cell.lost, cell.stuck) == (2, 2)
    assert cell.recovery_s is None
    assert not cell.ok


def test_reruns_by_attempts_or_log_lines_and_double_stores_by_done_lines():
    rows = [
        row(0, "DONE", attempts=2, finished_s=6),
        row(1, "DONE", finished_s=6),
        row(2, "DONE", finished_s=6),
    ]
    log_text = line(0, "stale") + line(0, "done") + line(1, "done") + line(1, "done")
    log_text += line(2, "skipped") + line(2, "done")  # a skipped duplicate is no re-run
    cell = cell_of(rows, log_text + "worker 0 (pid 7) exited with -9; restarting\n")
    assert cell.executed_twice == 2
    assert cell.stored_twice == 1
    assert cell.stale_results == 1
    assert cell.worker_crashes == 1
    assert not cell.ok


def test_markdown_and_json_hold_every_cell(tmp_path):
    cells = [
        cell_of([row(0, "DONE", finished_s=3)]),
        Cell(backend="db", fault="broker-down", skipped="n/a: no broker"),
    ]
    md, js = write_results(cells, tmp_path, meta={"commit": "abc"})
    text = md.read_text()
    assert "| redis | sigkill | 1 | 0 | 0 | 0 | 0 | 1.0 |" in text
    assert "| db | broker-down |" in text and "n/a: no broker" in text
    data = json.loads(js.read_text())
    assert [c["ok"] for c in data["cells"]] == [True, False]
    rows = [ln for ln in render_markdown(cells).splitlines() if ln.startswith("| ")]
    assert len(rows) == 3  # header + 2 cells


@pytest.mark.parametrize(
    "urls",
    [
        {"DATABASE_URL": "postgres://u@127.0.0.1:5433/x", "KAFKA_BOOTSTRAP_SERVERS": "[::1]:9"},
        {"REDIS_URL": "redis://localhost:6380/0", "AMQP_URL": "amqp://g:g@127.0.0.2:5673//"},
    ],
)
def test_loopback_addresses_are_accepted(urls):
    require_local([Service(url) for url in urls.values()])


@pytest.mark.parametrize(
    "urls",
    [
        {"DATABASE_URL": "postgres://u@db.internal:5432/x"},
        {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092,10.0.0.5:9092"},
        {"AMQP_URL": "amqp://guest:guest@192.168.1.4:5672//"},
    ],
)
def test_remote_addresses_are_refused(urls):
    with pytest.raises(NotLocal):
        require_local([Service(url) for url in urls.values()])


def test_text_table_has_a_row_per_cell_and_the_reason_of_an_na():
    cells = [
        cell_of([row(0, "DONE", finished_s=3)]),
        Cell(backend="db", fault="broker-restart", skipped="n/a: the job row is the message"),
        Cell(backend="db", fault="poison", skipped="error: TimeoutError: no job started"),
    ]
    text = render_text(cells)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["backend", "fault", "jobs"]
    assert lines[2].split() == ["redis", "sigkill", "1", "0", "0", "0", "0", "1.0", "0", "ok"]
    assert lines[4].endswith("n/a: the job row is the message")
    assert lines[5].split()[-1] == "error"
    assert "- db / poison: error: TimeoutError: no job started" in lines
