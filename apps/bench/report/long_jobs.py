"""The long-jobs table: one row per backend x run (the timer's defaults, the lab's
settings), computed from the job rows (the truth: attempts, status, times) and the
workers' log lines (evidence of every delivery and execution), then written as
`long_jobs.md`, `long_jobs.json` and `long_jobs.csv`. Pure: no database, no processes."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

# tasks.process logs "job <id> started attempt=N" when a claimed job starts, and
# "job <id> <outcome> ..." when it ends or is skipped.
STARTED = re.compile(r"job ([0-9a-f-]{36}) started ")
ENDED = re.compile(r"job ([0-9a-f-]{36}) (done|failed|retry|skipped|stale|abandoned)\b")
MODES = {"defaults": "defaults (timer scaled)", "lab": "lab settings"}
SIGN_WIDTH = 48


@dataclass
class Row:
    backend: str
    mode: str  # "defaults" or "lab"
    timer: str = ""  # "consumer_timeout"
    owner: str = ""
    default: str = ""  # what users start from, unscaled
    setting: str = ""  # what this run used
    jobs: int = 0
    executions_rows: list[int] = field(default_factory=list)  # attempts, per job
    executions_logs: list[int] = field(default_factory=list)  # "started" lines, per job
    deliveries_logs: list[int] = field(default_factory=list)  # started + skipped, per job
    stored: int = 0  # "done" lines: results stored
    stale: int = 0  # results refused (the attempt no longer held the job)
    done: int = 0  # rows DONE at the end
    failed: int = 0  # rows FAILED at the end
    wall_s: float | None = None  # first created to last finished (all finished)
    signs: dict[str, int] = field(default_factory=dict)  # log evidence of the timer
    note: str = ""  # why the backend was not run, or the error that stopped it

    @property
    def ran(self) -> bool:
        return not self.note


def per_job(counter: Counter[str], job_ids: list[str]) -> list[int]:
    return [counter[job_id] for job_id in job_ids]


def log_counts(log_text: str) -> dict[str, Counter[str]]:
    """Per job: runs started, runs ended by outcome ("done", "skipped", ...)."""
    counts: dict[str, Counter[str]] = {"started": Counter()}
    counts["started"].update(m.group(1) for m in STARTED.finditer(log_text))
    for match in ENDED.finditer(log_text):
        counts.setdefault(match.group(2), Counter())[match.group(1)] += 1
    # both mean: this attempt lost its claim and stored nothing
    counts["refused"] = counts.get("stale", Counter()) + counts.get("abandoned", Counter())
    return counts


def log_signs(log_text: str, patterns: tuple[str, ...]) -> dict[str, int]:
    """For each pattern that matched: its first match's text -> how many lines matched."""
    signs: dict[str, int] = {}
    for pattern in patterns:
        matches = [m.group(0) for m in re.finditer(pattern, log_text)]
        if matches:
            signs[matches[0][:SIGN_WIDTH]] = len(matches)
    return signs


def compute_row(
    row: Row, *, job_ids: list[str], rows: list[dict], log_text: str, patterns: tuple[str, ...]
) -> Row:
    """Fill `row` (backend, mode and timer set) from the job rows and the workers' log."""
    by_id = {str(r["id"]): r for r in rows}
    counts = log_counts(log_text)
    started, skipped = counts["started"], counts.get("skipped", Counter())
    row.jobs = len(job_ids)
    row.executions_rows = [by_id[j]["attempts"] if j in by_id else 0 for j in job_ids]
    row.executions_logs = per_job(started, job_ids)
    row.deliveries_logs = per_job(started + skipped, job_ids)
    row.stored = sum(per_job(counts.get("done", Counter()), job_ids))
    row.stale = sum(per_job(counts["refused"], job_ids))
    statuses = [by_id[j]["status"] for j in job_ids if j in by_id]
    row.done, row.failed = statuses.count("DONE"), statuses.count("FAILED")
    row.wall_s = wall_seconds([by_id[j] for j in job_ids if j in by_id], len(job_ids))
    row.signs = log_signs(log_text, patterns)
    return row


def wall_seconds(rows: list[dict], jobs: int) -> float | None:
    """First created to last finished, when every job finished; else None."""
    if not rows or len(rows) < jobs or any(r["finished_at"] is None for r in rows):
        return None
    first = min(r["created_at"] for r in rows)
    return round((max(r["finished_at"] for r in rows) - first).total_seconds(), 1)


def _ints(values: list[int]) -> str:
    return ",".join(str(v) for v in values) or "-"


def _one_line(text: str, width: int = 120) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= width else text[: width - 3] + "..."


def _signs(row: Row) -> str:
    if not row.signs:
        return "nothing"
    return "; ".join(f"`{text}` x{n}" for text, n in row.signs.items())


def _cells(row: Row) -> list[str]:
    head = [f"`{row.backend}`", MODES.get(row.mode, row.mode)]
    if not row.ran:
        return [
            *head,
            _one_line(row.note),
            *["-"] * 6,
            f"{row.timer or '-'} ({row.default or '-'})",
        ]
    wall = "not all" if row.wall_s is None else f"{row.wall_s:.1f}"
    return [
        *head,
        row.setting,
        f"{_ints(row.executions_rows)} / {_ints(row.executions_logs)}",
        _ints(row.deliveries_logs),
        f"{row.stored} ({row.stale} refused)",
        f"{row.done}/{row.jobs} done" + (f", {row.failed} failed" if row.failed else ""),
        wall,
        _signs(row),
        f"{row.timer}: {row.owner}; default {row.default}",
    ]


HEADER = (
    "backend",
    "run",
    "setting used",
    "executions/job (rows / logs)",
    "deliveries/job (logs)",
    "results stored",
    "jobs finished",
    "wall s",
    "logs show",
    "the timer that matters (default)",
)


def markdown(
    rows: list[Row], *, command: str = "", params: dict | None = None, level: int = 1
) -> str:
    """The table, with what was run above it (`level`: of its heading)."""
    lines = [f"{'#' * level} Long jobs: jobs that outlive the broker's own redelivery timer", ""]
    if params:
        lines.append(
            "Each run: {jobs} `sleep:{job_s:g}` jobs on {workers} worker slots per backend; "
            "timer scaled to {timer_s:g} s in the defaults run; job time limit "
            "{time_limit_s:g} s.".format(**params)
        )
    if command:
        lines.append(f"Command: `{command}`")
    lines += [
        "",
        "Executions: claims in the job rows (`attempts`) / `job <id> started` lines in the "
        "workers' logs. Deliveries: started + `skipped` lines (a copy the job-row guard "
        "refused). Results refused: an attempt that lost its claim could not store. Wall: "
        "first job created (its workers still starting) to last finished.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write(rows: list[Row], out_dir: Path, *, command: str = "", params: dict | None = None):
    """long_jobs.md, long_jobs.json (rows and params) and long_jobs.csv in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "long_jobs.md").write_text(markdown(rows, command=command, params=params))
    data = {"command": command, "params": params or {}, "rows": [asdict(r) for r in rows]}
    (out_dir / "long_jobs.json").write_text(json.dumps(data, indent=2, default=str))
    with (out_dir / "long_jobs.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(_cells(row) for row in rows)
    return out_dir / "long_jobs.md"
