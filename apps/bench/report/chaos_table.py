"""The faults family: the chaos table (backend x fault: lost, doubled, stuck, recovery_s).

`manage.py chaos` writes chaos.json: {"meta", "cells": [{backend, fault, lost, stored_twice,
stuck, recovery_s, ...}]}. The bench reads it from the run's folder: `runbench --chaos` runs
`make chaos` (private services, never the shared ones) into it, `--chaos-file PATH` copies
one in. Also accepted: a list of rows {"backend", "fault", "lost", "doubled", "stuck",
"recovery_s"}, {"rows": [...]}, or {backend: {fault: {lost, doubled, stuck, recovery_s}}}.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from apps.ops.launch import ROOT

FIELDS = ("lost", "doubled", "stuck", "executed_twice", "recovery_s")
CHAOS_TIMEOUT_S = 20 * 60.0


def normalize(data: object) -> list[dict]:
    """Rows {backend, fault, lost, doubled, stuck, executed_twice, recovery_s} from any
    accepted shape."""
    for key in ("cells", "rows"):  # manage.py chaos writes {"meta": ..., "cells": [...]}
        if isinstance(data, dict) and isinstance(data.get(key), list):
            data = data[key]
    if isinstance(data, list):
        return [_row(r.get("backend"), r.get("fault"), r) for r in data if isinstance(r, dict)]
    if isinstance(data, dict):
        return [
            _row(backend, fault, values)
            for backend, faults in data.items()
            if isinstance(faults, dict)
            for fault, values in faults.items()
            if isinstance(values, dict)
        ]
    return []


def _row(backend: object, fault: object, values: dict) -> dict:
    """doubled = results stored twice (`stored_twice`; executing twice is at-least-once)."""
    row = {"backend": str(backend), "fault": str(fault), **{k: values.get(k) for k in FIELDS}}
    if row["doubled"] is None:
        row["doubled"] = values.get("stored_twice")
    row["skipped"] = str(values.get("skipped") or "")  # "n/a: ..." or "error: ..."
    return row


def load_chaos(path: Path) -> list[dict]:
    """The chaos rows of `path`, [] when it is missing or unreadable."""
    try:
        return normalize(json.loads(path.read_text()))
    except (OSError, ValueError):
        return []


def run_chaos(out: Path, env: dict[str, str], backends: list[str]) -> str:
    """`make chaos` (its private services, never the shared ones) with `--backend a,b --out
    <run dir>`, which writes <run dir>/chaos.json; '' on success, else the reason."""
    args = f"--backend {','.join(backends)} --out {out.parent}"
    cmd = ["make", "--no-print-directory", "chaos", f"CHAOS_ARGS={args}"]
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=CHAOS_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return f"chaos did not finish within {CHAOS_TIMEOUT_S:g}s"
    if done.returncode != 0:
        return f"chaos exited with {done.returncode}: {done.stderr.strip()[-300:]}"
    return "" if out.is_file() else f"chaos wrote no {out.name}"


def summary(rows: list[dict]) -> dict[str, dict]:
    """Per backend: totals of lost, doubled, stuck over its faults, and the worst recovery."""
    out: dict[str, dict] = {}
    for row in rows:
        entry = out.setdefault(
            row["backend"], {"faults": 0, "lost": 0, "doubled": 0, "stuck": 0, "recovery_s": None}
        )
        entry["faults"] += 1
        for name in ("lost", "doubled", "stuck"):
            entry[name] += row.get(name) or 0
        rec = row.get("recovery_s")
        if isinstance(rec, int | float):
            entry["recovery_s"] = max(entry["recovery_s"] or 0.0, float(rec))
    return out
