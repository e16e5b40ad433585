"""What workers on other hosts change, per backend: the report.md section made from a
`runbench --family network` run (network.json) and a `chaos --faults partition,...` run
(chaos.json), both in one folder (`manage.py bench_report RUN --hosts FOLDER` attaches it).

load(folder) -> dict (stored in the run's context as "hosts"); section(hosts) -> lines.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from apps.bench.hosts.faults import NETWORK_FAULTS
from apps.bench.report.markdown import fmt, table

FAULT_COLUMNS = ("lost", "executed_twice", "stored_twice", "stuck")
WORKERS = 2  # the network family runs one noop worker on each of two worker hosts


def load(folder: Path) -> dict:
    """{"source", "meta", "network": rows, "faults": rows} of a hosts folder; {} when empty."""
    out: dict = {"source": folder.name}
    if (folder / "network.json").is_file():
        data = json.loads((folder / "network.json").read_text())
        out["meta"], out["network"] = data.get("meta", {}), data.get("rows", [])
    if (folder / "chaos.json").is_file():
        cells = json.loads((folder / "chaos.json").read_text()).get("cells", [])
        out["faults"] = [c for c in cells if c.get("fault") in NETWORK_FAULTS]
    return out if len(out) > 1 else {}


def _cell(rows: list[dict], kind: str, alias: str, rtt: float) -> dict | None:
    return next(
        (
            r
            for r in rows
            if r.get("kind") == kind
            and r["backend"] == alias
            and r["rtt_ms"] == rtt
            and "error" not in r
        ),
        None,
    )


def _grows_with_rtt(rows: list[dict], alias: str, rtts: list[float]) -> bool:
    """True when the pickup p50 rises with every step of RTT (a poller's does not: it
    waits for its next poll, whose phase the probe does not control)."""
    cells = [_cell(rows, "noop", alias, rtt) for rtt in rtts]
    p50 = [float(c["pickup_p50_ms"]) for c in cells if c]  # the RTTs it has a cell at
    return all(a < b for a, b in zip(p50, p50[1:], strict=False))


def per_backend(hosts: dict) -> list[dict]:
    """One dict per backend: pickup and capacity at the lowest and highest RTT, the round
    trips a pickup costs (not for a poller), the round trips a job's whole cycle costs a
    worker (from capacity), OCR at W = 2 across hosts (same RTTs), each network fault's
    verdict."""
    rows = hosts.get("network", [])
    faults = hosts.get("faults", [])
    aliases = list(dict.fromkeys([r["backend"] for r in rows] + [f["backend"] for f in faults]))
    rtts = sorted({r["rtt_ms"] for r in rows}) or [0.0]
    lo, hi = rtts[0], rtts[-1]
    out = []
    for alias in aliases:
        item: dict = {"backend": alias, "rtt_near": lo, "rtt_far": hi}
        near, far = _cell(rows, "noop", alias, lo), _cell(rows, "noop", alias, hi)
        item |= {"near": near, "far": far}
        if near and far and hi > lo:
            if _grows_with_rtt(rows, alias, rtts):
                added = far["pickup_p50_ms"] - near["pickup_p50_ms"]
                item["round_trips"] = added / (hi - lo)
            else:
                item["polls"] = True  # the poll's phase, not the link, sets its pickup
            item["capacity_ratio"] = far["capacity_per_s"] / near["capacity_per_s"]
            per_job_ms = [1000.0 * WORKERS / c["capacity_per_s"] for c in (near, far)]
            item["job_trips"] = (per_job_ms[1] - per_job_ms[0]) / (hi - lo)
        item["ocr_near"], item["ocr_far"] = (
            _cell(rows, "ocr", alias, lo),
            _cell(rows, "ocr", alias, hi),
        )
        if item["ocr_near"] and item["ocr_far"] and hi > lo:
            item["ocr_ratio"] = (
                item["ocr_far"]["ocr_jobs_per_s"] / item["ocr_near"]["ocr_jobs_per_s"]
            )
        item["faults"] = {f["fault"]: f for f in faults if f["backend"] == alias}
        out.append(item)
    return out


def _fault_cell(cell: dict | None) -> str:
    if cell is None:
        return "-"
    if cell.get("skipped"):
        return "n/a"
    bad = [f"{cell.get(c, 0)} {c.replace('_', ' ')}" for c in FAULT_COLUMNS if cell.get(c)]
    if cell.get("stalled"):
        bad.append(f"{len(cell['stalled'])} stalled")
    if cell.get("error"):
        bad.append("errored")
    recovery = cell.get("healed_recovery_s", cell.get("recovery_s"))
    text = ", ".join(bad) if bad else "ok"
    return text + (f" ({recovery:.0f} s)" if isinstance(recovery, int | float) else "")


def summary(items: list[dict]) -> str:
    """One paragraph: what a link to the broker costs, and which design survives a cut."""
    trips = [i["round_trips"] for i in items if "round_trips" in i]
    cycle = [i["job_trips"] for i in items if "job_trips" in i]
    ratios = [i["capacity_ratio"] for i in items if "capacity_ratio" in i]
    parts = []
    if trips and cycle:
        far, near = items[0]["rtt_far"], items[0]["rtt_near"]
        least = min((i for i in items if "job_trips" in i), key=lambda i: i["job_trips"])
        most = max((i for i in items if "job_trips" in i), key=lambda i: i["job_trips"])
        pollers = [i["backend"] for i in items if i.get("polls")]
        parts.append(
            f"Moving the workers {far:g} ms (RTT) away from the broker adds "
            f"{min(trips):.1f}-{max(trips):.1f} round trips to a job's pickup"
            + (f" ({', '.join(pollers)}: set by its polling, not the link)" if pollers else "")
            + f", and {min(cycle):.0f}-{max(cycle):.0f} round trips to each job's whole cycle "
            f"in a worker (fewest: {least['backend']}, most: {most['backend']}): two noop "
            f"workers keep {min(ratios):.0%}-{max(ratios):.0%} of their capacity at "
            f"{near:g} ms (median {statistics.median(ratios):.0%})."
        )
    ocr = [i["ocr_ratio"] for i in items if "ocr_ratio" in i]
    if ocr:
        far = items[0]["rtt_far"]
        parts.append(
            f"OCR at W = 2 across two hosts runs at {min(ocr):.0%}-{max(ocr):.0%} of its "
            f"{items[0]['rtt_near']:g} ms rate at {far:g} ms (median {statistics.median(ocr):.0%}; "
            "one burst per cell, so a few % is noise)."
        )
    cells = [(i["backend"], f, c) for i in items for f, c in i["faults"].items()]
    cells = [(b, f, c) for b, f, c in cells if not c.get("skipped")]
    broken = [
        f"{b} ({f}: {_fault_cell(c)})"
        for b, f, c in cells
        if not c.get("ok", True)
        or any(c.get(k) for k in ("lost", "stored_twice", "stuck", "stalled", "error"))
    ]
    twice = sorted({b for b, f, c in cells if c.get("executed_twice")})
    if cells:
        parts.append(
            "Network faults: no job lost or stuck, and every worker consumed again after the "
            "heal without a restart."
            if not broken
            else "Network faults that cost jobs or stalled a worker: " + "; ".join(broken) + "."
        )
    if twice:
        parts.append(
            f"A worker cut off past its lease had its job run again elsewhere on "
            f"{', '.join(twice)} (at-least-once; its late result is dropped, stored once)."
        )
    return " ".join(parts)


def section(hosts: dict) -> list[str]:
    """report.md's "Workers on other hosts" section; [] when the run has none attached."""
    items = per_backend(hosts) if hosts else []
    if not items:
        return []
    faults = list(dict.fromkeys(f for i in items for f in i["faults"]))
    near, far = items[0].get("rtt_near", 0), items[0].get("rtt_far", 0)
    header = [
        "backend",
        f"pickup p50 ms @{near:g}",
        f"@{far:g}",
        "round trips (pickup)",
        "round trips (job)",
        f"capacity /s @{near:g}",
        f"@{far:g}",
        f"OCR W=2 jobs/s @{near:g}",
        f"@{far:g}",
        *faults,
    ]
    body = []
    for i in items:
        n, f = i.get("near") or {}, i.get("far") or {}
        on, of = i.get("ocr_near") or {}, i.get("ocr_far") or {}
        body.append(
            [
                i["backend"],
                fmt(n.get("pickup_p50_ms")),
                fmt(f.get("pickup_p50_ms")),
                "poll" if i.get("polls") else fmt(i.get("round_trips")),
                fmt(i.get("job_trips")),
                fmt(n.get("capacity_per_s")),
                fmt(f.get("capacity_per_s")),
                fmt(on.get("ocr_jobs_per_s"), 2),
                fmt(of.get("ocr_jobs_per_s"), 2),
                *[_fault_cell(i["faults"].get(x)) for x in faults],
            ]
        )
    meta = hosts.get("meta", {})
    return [
        "## Workers on other hosts",
        "",
        summary(items),
        "",
        *table(header, body),
        "",
        f"From {hosts.get('source', '?')} (network namespaces: a broker host with PostgreSQL "
        "and the brokers, an API host, two worker hosts; delay method "
        f"{meta.get('delay_method', '?')}; one worker per worker host). Round trips (pickup) = "
        "added pickup p50 / added RTT (poll: it does not grow with the RTT); round trips "
        "(job) = added time per job of a worker (2 workers / capacity) / added RTT. Fault "
        "cells: what went wrong (recovery after the heal, s); n/a = the fault does not "
        "apply (hosts/chaos.md says why).",
        "",
        "![pickup and capacity vs RTT](hosts/network.png)",
    ]
