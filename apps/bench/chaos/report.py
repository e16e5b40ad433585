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
HEARTBEAT_DEATH = re.compile(r"Exception in thread heartbeat-")
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
        return not self.skipped and not (self.lost or self.stored_twice or self.stuck)


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
        cell.notes.append(f"a heartbeat thread died {deaths} time(s) (lease then expires)")
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


def render_markdown(cells: list[Cell], *, header: str = "") -> str:
    """The table backend x fault, with a notes list under it."""
    names = ["backend", "fault", *(title for _, title in COLUMNS), "verdict"]
    lines = [header, ""] if header else []
    lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for cell in cells:
        verdict = (
            ("n/a" if cell.skipped.startswith("n/a") else "error")
            if cell.skipped
            else ("ok" if cell.ok else "FAIL")
        )
        values = [_value(cell, key) for key, _ in COLUMNS]
        lines.append("| " + " | ".join([cell.backend, cell.fault, *values, verdict]) + " |")
    notes = [(c, n) for c in cells for n in ([c.skipped] if c.skipped else []) + c.notes]
    if notes:
        lines += ["", "Notes:"]
        lines += [f"- {cell.backend} / {cell.fault}: {note}" for cell, note in notes]
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
