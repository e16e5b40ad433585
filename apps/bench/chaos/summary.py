"""The chaos table: one cell per backend x fault, computed from the job rows (the truth)
and the workers' log lines (evidence of each run), then printed and written as
`chaos.md` and `chaos.json`."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

FINISHED = {"DONE", "FAILED", "CANCELLED"}
# tasks.process logs one line per run that reached its end: "job <id> <outcome> ..."
RUN_LINE = re.compile(r"job ([0-9a-f-]{36}) (done|failed|retry|skipped|stale) ")
CRASH_LINE = re.compile(r"exited with")  # supervisor, Celery: a worker process died
HEARTBEAT_DEATH = re.compile(r"heartbeat of job \S+ failed")  # tasks/limits.py Lease.tick
COLUMNS = (
    ("jobs", "jobs"),
    ("lost", "lost"),
    ("executed_twice", "executed twice"),
    ("stored_twice", "stored twice"),
    ("stuck", "stuck"),
    ("recovery_s", "recovery s"),
    ("stale_results", "stale results dropped"),
    ("worker_crashes", "worker crashes"),
    ("submit_errors", "submit errors"),
)


@dataclass
class Cell:
    backend: str
    fault: str
    jobs: int = 0
    lost: int = 0
    executed_twice: int = 0
    stored_twice: int = 0
    stuck: int = 0
    recovery_s: float | None = None
    stale_results: int = 0
    worker_crashes: int = 0
    submit_errors: int = 0
    skipped: str = ""  # why the fault does not apply, or the error that stopped it
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # a message that names no job must not kill a worker (issue 8: never crash-loop)
        crashed = self.fault == "poison" and self.worker_crashes > 0
        return not self.skipped and not (self.lost or self.stored_twice or self.stuck or crashed)


def compute_cell(
    *,
    backend: str,
    fault: str,
    submitted: list[str],
    rows: list[dict],
    log_text: str,
    fault_at: datetime,
    fault_end: datetime,
    submit_errors: int = 0,
) -> Cell:
    """One cell from the rows of the jobs this cell submitted (read at its deadline).

    lost: submitted but missing, or FAILED/CANCELLED (the workload cannot fail: a failed
    job is work the fault destroyed); stuck: not finished at the deadline; executed twice:
    claimed more than once (attempts) or more than one run line in the logs; stored twice:
    more than one `done` line for one job; recovery: fault start to the last finish of
    the jobs created before the fault ended (None when some of them never finished)."""
    by_id = {str(row["id"]): row for row in rows}
    runs = Counter((m.group(1), m.group(2)) for m in RUN_LINE.finditer(log_text))
    ran = Counter(job_id for (job_id, outcome) in runs.elements() if outcome != "skipped")
    cell = Cell(backend=backend, fault=fault, jobs=len(submitted), submit_errors=submit_errors)
    for job_id in submitted:
        row = by_id.get(job_id)
        if row is None or row["status"] in FINISHED - {"DONE"}:
            cell.lost += 1
        elif row["status"] not in FINISHED:
            cell.stuck += 1
        if row is not None and (row["attempts"] > 1 or ran[job_id] > 1):
            cell.executed_twice += 1
        if runs[(job_id, "done")] > 1:
            cell.stored_twice += 1
        cell.stale_results += runs[(job_id, "stale")]
    cell.worker_crashes = len(CRASH_LINE.findall(log_text))
    if deaths := len(HEARTBEAT_DEATH.findall(log_text)):
        cell.notes.append(f"a lease renewal failed {deaths} time(s) (retried; lease may expire)")
    cell.recovery_s = recovery_seconds(rows, fault_at=fault_at, fault_end=fault_end)
    return cell


def recovery_seconds(rows: list[dict], *, fault_at: datetime, fault_end: datetime):
    affected = [row for row in rows if row["created_at"] <= fault_end]
    if not affected or any(row["status"] not in FINISHED for row in affected):
        return None
    last = max(row["finished_at"] for row in affected)
    return round(max(0.0, (last - fault_at).total_seconds()), 1)


def _value(cell: Cell, key: str) -> str:
    if cell.skipped:
        return "-"
    value = getattr(cell, key)
    if key == "recovery_s":
        return "never" if value is None else f"{value:.1f}"
    return str(value)


def verdict(cell: Cell) -> str:
    """ok, FAIL, error, or "n/a: <why the fault does not apply>"."""
    if cell.skipped:
        return cell.skipped if cell.skipped.startswith("n/a") else "error"
    return "ok" if cell.ok else "FAIL"


def _notes(cells: list[Cell]) -> list[str]:
    errors = [(c, c.skipped) for c in cells if c.skipped and not c.skipped.startswith("n/a")]
    return [
        f"- {c.backend} / {c.fault}: {n}"
        for c, n in errors + [(c, n) for c in cells for n in c.notes]
    ]


def render_markdown(cells: list[Cell], *, header: str = "") -> str:
    """The table backend x fault, with a notes list under it."""
    names = ["backend", "fault", *(title for _, title in COLUMNS), "verdict"]
    lines = [header, ""] if header else []
    lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for cell in cells:
        values = [_value(cell, key) for key, _ in COLUMNS]
        lines.append("| " + " | ".join([cell.backend, cell.fault, *values, verdict(cell)]) + " |")
    if notes := _notes(cells):
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


TEXT_COLUMNS = (
    ("jobs", "jobs"),
    ("lost", "lost"),
    ("executed_twice", "ran 2x"),
    ("stored_twice", "stored 2x"),
    ("stuck", "stuck"),
    ("recovery_s", "recovery s"),
    ("worker_crashes", "crashes"),
)


def render_text(cells: list[Cell]) -> str:
    """The same table for a terminal: aligned columns, a rule between backends, the
    verdict (with the reason of an n/a) last, then the notes."""
    head = ["backend", "fault", *(title for _, title in TEXT_COLUMNS), "verdict"]
    rows = [
        [c.backend, c.fault, *(_value(c, key) for key, _ in TEXT_COLUMNS), verdict(c)]
        for c in cells
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]

    def fmt(row: list[str]) -> str:
        left = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        nums = [v.rjust(w) for v, w in zip(row[2:-1], widths[2:], strict=True)]
        return "  ".join([*left, *nums, row[-1]])

    lines = [fmt(head), "-" * len(fmt(head))]
    for i, row in enumerate(rows):
        if i and row[0] != rows[i - 1][0]:
            lines.append("")
        lines.append(fmt(row))
    if notes := _notes(cells):
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def write_results(cells: list[Cell], out_dir: Path, *, meta: dict) -> tuple[Path, Path]:
    """Write chaos.md and chaos.json into `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    header = "# Chaos run\n\n" + "\n".join(f"- {k}: {v}" for k, v in meta.items())
    md, js = out_dir / "chaos.md", out_dir / "chaos.json"
    md.write_text(render_markdown(cells, header=header))
    payload = {"meta": meta, "cells": [{**asdict(c), "ok": c.ok} for c in cells]}
    js.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return md, js
