"""The raw family's report: "What the queue costs vs what the lab costs".

One row per alias x W: the raw queue's msgs/s (noop messages through the backend's own
client, no job rows) and its CPU-ms per message by component, beside the full-lifecycle
noop capacity of the pickup family's cells (jobs through job rows) when a run has them.
Files: report.md, cells.json, cells.csv.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

SYSTEM = ("workers", "broker", "postgres")  # what the queue costs; the rest is instrument
INSTRUMENT = ("bench", "loadgen")
TITLE = "## What the queue costs vs what the lab costs"
CSV_COLUMNS = (
    "cell_id", "alias", "workers", "status", "raw_msgs_per_s", "round_trip_per_s",
    "publish_per_s",
    "cpu_ms_workers", "cpu_ms_broker", "cpu_ms_postgres", "cpu_ms_system",
    "cpu_ms_instrument", "instrument_share", "lifecycle_jobs_per_s",
    "lifecycle_cpu_ms_per_job", "note",
)  # fmt: skip


def table_rows(rows: list[dict], lifecycle: dict[tuple[str, int], dict]) -> list[dict]:
    """Flat rows: raw figures beside the lifecycle ones of the same alias and W."""
    return [_flat(row, lifecycle.get((row["alias"], row["workers"])) or {}) for row in rows]


def _flat(row: dict, life: dict) -> dict:
    m = row.get("metrics") or {}
    per = m.get("cpu_ms_per_job") or {}
    ok = row["status"] == "ok" and bool(per)
    return {
        "cell_id": row["cell_id"],
        "alias": row["alias"],
        "workers": row["workers"],
        "status": row["status"],
        "raw_msgs_per_s": m.get("msgs_per_s"),
        "round_trip_per_s": m.get("round_trip_per_s"),
        "publish_per_s": m.get("publish_per_s"),
        **{f"cpu_ms_{c}": per.get(c) for c in SYSTEM},
        "cpu_ms_system": sum(per.get(c, 0.0) for c in SYSTEM) if ok else None,
        "cpu_ms_instrument": sum(per.get(c, 0.0) for c in INSTRUMENT) if ok else None,
        "instrument_share": m.get("instrument_share"),
        "lifecycle_jobs_per_s": life.get("jobs_per_s"),
        "lifecycle_cpu_ms_per_job": life.get("cpu_ms_per_job"),
        "note": row.get("note") or row.get("raw_note") or "",
    }


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(flat: list[dict], *, command: str, lifecycle_source: str = "") -> list[str]:
    """The section: a table, then one sentence per measured alias at its largest W."""
    lines = [TITLE, "", f"Command: `{command}`", ""]
    lines += [
        "| alias | W | raw msgs/s | round trip/s | publish/s | CPU-ms/msg workers | broker "
        "| postgres | system | instrument | lifecycle jobs/s | lifecycle CPU-ms/job | note |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    lines += [_line(r) for r in flat]
    lines += ["", *_legend(lifecycle_source), "", *_sentences(flat)]
    return lines


def _line(r: dict) -> str:
    cells = [
        r["alias"],
        str(r["workers"]),
        _num(r["raw_msgs_per_s"]),
        _num(r["round_trip_per_s"]),
        _num(r["publish_per_s"]),
        *(_num(r[f"cpu_ms_{c}"], 2) for c in SYSTEM),
        _num(r["cpu_ms_system"], 2),
        _num(r["cpu_ms_instrument"], 2),
        _num(r["lifecycle_jobs_per_s"], 1),
        _num(r["lifecycle_cpu_ms_per_job"], 1),
        r["note"] if r["status"] != "ok" else "",
    ]
    return "| " + " | ".join(cells) + " |"


def _legend(source: str) -> list[str]:
    life = f"the pickup cells of {source}" if source else "pickup cells (none in this run)"
    return [
        "raw msgs/s: the drain rate of N noop messages queued while the W consumer processes "
        "(`tasks/raw_consume.py` on `Backend.raw_queue()`; no job rows, no API) were paused: "
        "N / (last ack - go). round trip/s: N / (last ack - first publish), publishing "
        "included. publish/s: the bench's publish loop alone (one message at a time through "
        "the backend's client, as the lab publishes). CPU-ms per message by component over "
        "publish and drain; system = workers + broker + postgres (PostgreSQL and the brokers "
        "are shared: their figure includes whatever else used them); instrument = the "
        "publishing bench process. One run per cell on a shared 2-core machine: no verdict "
        "between close figures.",
        f"lifecycle: noop jobs through job rows, the capacity burst's jobs/s and the cell's "
        f"system CPU-ms per job (without the instrument), medians over repeats, from {life}.",
    ]


def _sentences(flat: list[dict]) -> list[str]:
    best: dict[str, dict] = {}
    for r in flat:
        if r["status"] == "ok" and r["raw_msgs_per_s"]:
            best[r["alias"]] = r  # rows come in W order: the last is the largest W
    return [f"- {_sentence(r)}" for r in best.values()]


def _sentence(r: dict) -> str:
    text = (
        f"{r['alias']} (W={r['workers']}): the queue itself does "
        f"{_num(r['raw_msgs_per_s'])} msg/s at {_num(r['cpu_ms_system'], 2)} CPU-ms"
    )
    if r["lifecycle_jobs_per_s"] is None:
        return text + "; no lifecycle cell of this alias and W in the run."
    return text + (
        f"; the lab's job bookkeeping makes it {_num(r['lifecycle_jobs_per_s'])} jobs/s at "
        f"{_num(r['lifecycle_cpu_ms_per_job'], 1)} CPU-ms."
    )


def write(rows: list[dict], out_dir: Path, *, command: str, params: dict, lifecycle=None,
          lifecycle_source: str = "") -> Path:  # fmt: skip
    """report.md, cells.json and cells.csv of a raw run in `out_dir`; the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    flat = table_rows(rows, lifecycle or {})
    lines = [
        "# Raw family",
        "",
        *markdown(flat, command=command, lifecycle_source=lifecycle_source),
    ]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    data = {"command": command, "params": params, "lifecycle_source": lifecycle_source,
            "results": rows}  # fmt: skip
    (out_dir / "cells.json").write_text(json.dumps(data, indent=1, default=str))
    with (out_dir / "cells.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(flat)
    return out_dir / "report.md"
