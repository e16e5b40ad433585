"""The `network` family: what round-trip time between the worker hosts and the broker host
costs each backend. In one HostLab (a broker host with PostgreSQL and the brokers, an API
host, two worker hosts), for each RTT and each backend alias: one noop worker on each
worker host, `probe_jobs` noop jobs one at a time (pickup p50/p99: queued -> started, from
the job rows) and a burst of `burst_jobs` noop jobs (capacity: jobs/s the two sustain);
then OCR throughput with W = 2 across the two hosts at the lowest and the highest RTT (does a
job of seconds feel the link?). Plain rows (dicts),
a markdown table and a plot (pickup and capacity vs RTT, one colour per backend).

run_network_family(out_dir, aliases) -> NetworkResult
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from django.conf import settings  # noqa: E402

from apps.bench.hosts.lab import HostLab  # noqa: E402
from apps.bench.measure.family_metrics import drain_rate, e2e_s, pickup_metrics  # noqa: E402
from apps.bench.measure.metrics import percentile  # noqa: E402

FAMILY = "network"


@dataclass(frozen=True)
class NetworkParams:
    rtts_ms: tuple[float, ...] = (0.0, 1.0, 10.0)
    probe_jobs: int = 20
    burst_jobs: int = 100
    ocr: bool = True  # OCR cells at the lowest and the highest RTT
    ocr_jobs: int = 8
    timeout_s: float = 120.0


QUICK = NetworkParams(probe_jobs=8, burst_jobs=30, ocr_jobs=4)


@dataclass
class NetworkResult:
    rows: list[dict]
    markdown: str
    meta: dict = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def worker_aliases() -> list[str]:
    """The backend aliases whose jobs run in `runworker` processes (not in-process)."""
    return [alias for alias, conf in settings.JOB_BACKENDS.items() if not conf.get("IN_PROCESS")]


def _workers(lab: HostLab, alias: str, workload: str | None) -> list:
    return [lab.start_worker(alias, host, count=1, workload=workload) for host in lab.worker_hosts]


def noop_cell(lab: HostLab, alias: str, rtt_ms: float, params: NetworkParams) -> dict:
    """Pickup and capacity of one backend at one RTT (its workers started and stopped)."""
    tag = f"net-{alias}-{rtt_ms:g}"
    row: dict = {"family": FAMILY, "kind": "noop", "backend": alias, "rtt_ms": rtt_ms}
    procs = _workers(lab, alias, "noop")
    try:
        lab.client("probe", backend=alias, tag=f"{tag}-warm", jobs=2, timeout_s=params.timeout_s)
        probe = lab.client(
            "probe", backend=alias, tag=f"{tag}-probe", jobs=params.probe_jobs, timeout_s=30
        )
        burst = lab.client(
            "burst", backend=alias, tag=f"{tag}-burst", jobs=params.burst_jobs, timeout_s=120
        )
    finally:
        for proc in procs:
            lab.stop(proc)
    row.update(pickup_metrics(probe))
    row["capacity_per_s"] = drain_rate(burst)
    row["lost"] = sum(1 for r in probe + burst if r["status"] != "DONE")
    return row


def ocr_cell(lab: HostLab, alias: str, rtt_ms: float, params: NetworkParams) -> dict:
    """OCR throughput with one worker on each of the two worker hosts (W = 2)."""
    tag = f"net-{alias}-{rtt_ms:g}-ocr"
    procs = _workers(lab, alias, None)
    try:
        lab.client("probe", backend=alias, tag=f"{tag}-warm", workload="ocr", timeout_s=120)
        burst = lab.client(
            "burst", backend=alias, tag=tag, jobs=params.ocr_jobs, workload="ocr", timeout_s=300
        )
    finally:
        for proc in procs:
            lab.stop(proc)
    return {
        "family": FAMILY,
        "kind": "ocr",
        "backend": alias,
        "rtt_ms": rtt_ms,
        "workers": len(procs),
        "ocr_jobs": len(burst),
        "ocr_jobs_per_s": drain_rate(burst),
        "ocr_e2e_p50_s": percentile(e2e_s(burst), 50),
        "lost": sum(1 for r in burst if r["status"] != "DONE"),
    }


CELLS: dict[str, Callable[[HostLab, str, float, NetworkParams], dict]] = {
    "noop": noop_cell,
    "ocr": ocr_cell,
}


def plan(params: NetworkParams, aliases: Sequence[str]) -> list[tuple[str, float, str]]:
    """(kind, RTT ms, alias) of every cell, in the order they run (RTT changes least)."""
    cells = [("noop", rtt, alias) for rtt in params.rtts_ms for alias in aliases]
    if params.ocr and params.rtts_ms:
        ends = dict.fromkeys([min(params.rtts_ms), max(params.rtts_ms)])
        cells += [("ocr", rtt, alias) for rtt in ends for alias in aliases]
    return cells


def run_cell(lab: HostLab, kind: str, rtt_ms: float, alias: str, params: NetworkParams) -> dict:
    """One cell; a failure is a row with its error, not a lost run. proxy_cpu_s: the delay
    proxy's CPU during the cell (instrument cost; 0 with netem)."""
    if lab.delay_ms != rtt_ms / 2:
        lab.set_delay(rtt_ms / 2)
    cpu_before = lab.proxy_cpu_s()
    try:
        row = CELLS[kind](lab, alias, rtt_ms, params)
    except Exception as exc:
        row = {"family": FAMILY, "kind": kind, "backend": alias, "rtt_ms": rtt_ms}
        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
    row["proxy_cpu_s"] = round(lab.proxy_cpu_s() - cpu_before, 3)
    return row


def run_network_family(
    out_dir: Path,
    aliases: Sequence[str] | None = None,
    *,
    params: NetworkParams = NetworkParams(),
    on_row: Callable[[dict], None] | None = None,
) -> NetworkResult:
    """Every RTT x alias noop cell, then the OCR cells; writes network.md, network.json and
    network.png into out_dir."""
    rows: list[dict] = []
    with HostLab(workers=2, log_dir=out_dir / "logs") as lab:
        for kind, rtt_ms, alias in plan(params, list(aliases or worker_aliases())):
            rows.append(run_cell(lab, kind, rtt_ms, alias, params))
            if on_row:
                on_row(rows[-1])
        meta = _meta(lab, params)
    return write_network(rows, out_dir, meta=meta)


def _meta(lab: HostLab, params: NetworkParams) -> dict:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
    ).stdout.strip()
    return {
        "delay_method": lab.method,
        "hosts": "broker (PostgreSQL + brokers), api, w1, w2 (network namespaces, one bridge)",
        "commit": commit,
        "machine": platform.node(),
        "params": asdict(params),
    }


# --- report ---

NOOP_COLUMNS = ("pickup_p50_ms", "pickup_p99_ms", "capacity_per_s", "lost", "proxy_cpu_s")
OCR_COLUMNS = ("workers", "ocr_jobs", "ocr_jobs_per_s", "ocr_e2e_p50_s", "lost", "proxy_cpu_s")


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _table(rows: list[dict], columns: Sequence[str]) -> list[str]:
    head = ["backend", "RTT ms", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        values = [
            row.get("error", "")[:60] if "error" in row else _fmt(row.get(c)) for c in columns
        ]
        lines.append("| " + " | ".join([row["backend"], _fmt(row["rtt_ms"]), *values]) + " |")
    return lines


def render_network(rows: list[dict], meta: dict) -> str:
    method = meta.get("delay_method", "?")
    how = {
        "netem": "tc netem on both ends of each worker link",
        "proxy": "an asyncio delay proxy on the broker host in front of every service port "
        "(the kernel has no sch_netem); its CPU is instrument cost (proxy_cpu_s per cell)",
    }.get(method, method)
    lines = [
        "# Network family: RTT between worker hosts and the broker host",
        "",
        f"- hosts: {meta.get('hosts', '')}",
        f"- delay method: {method} ({how})",
        f"- commit {meta.get('commit', '')}, machine {meta.get('machine', '')}",
        f"- params: {meta.get('params', {})}",
        "",
        "## noop: pickup (queued -> started) and capacity, one worker on each of 2 hosts",
        "",
        *_table([r for r in rows if r["kind"] == "noop"], NOOP_COLUMNS),
    ]
    if ocr := [r for r in rows if r["kind"] == "ocr"]:
        lines += ["", "## OCR throughput, W = 2 across 2 hosts", "", *_table(ocr, OCR_COLUMNS)]
    return "\n".join(lines) + "\n"


def plot_network(rows: list[dict], path: Path) -> Path:
    """Pickup p50/p99 and capacity vs RTT, one colour per backend."""
    noop = [r for r in rows if r["kind"] == "noop" and "error" not in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, alias in enumerate(dict.fromkeys(r["backend"] for r in noop)):
        mine = sorted((r for r in noop if r["backend"] == alias), key=lambda r: r["rtt_ms"])
        x, colour = [r["rtt_ms"] for r in mine], f"C{i}"
        left.plot(x, [r["pickup_p50_ms"] for r in mine], "o-", color=colour, label=f"{alias} p50")
        left.plot(x, [r["pickup_p99_ms"] for r in mine], "x--", color=colour, alpha=0.6)
        right.plot(x, [r["capacity_per_s"] for r in mine], "o-", color=colour, label=alias)
    left.set(xlabel="RTT ms (worker host <-> broker host)", ylabel="pickup ms (p50 -, p99 --)")
    left.set_yscale("log")  # a poller's or a rebalance's tail beside milliseconds
    right.set(xlabel="RTT ms (worker host <-> broker host)", ylabel="noop jobs/s (2 workers)")
    left.set_title("pickup latency")
    right.set_title("capacity")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_network(rows: list[dict], out_dir: Path, *, meta: dict) -> NetworkResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_network(rows, meta)
    paths = {"md": out_dir / "network.md", "json": out_dir / "network.json"}
    paths["md"].write_text(markdown)
    paths["json"].write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    paths["png"] = plot_network(rows, out_dir / "network.png")
    return NetworkResult(rows=rows, markdown=markdown, meta=meta, paths=paths)
