"""The report's CPU and submit-capacity sections: tables (Markdown lines) and cpu.png."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from apps.bench.measure.cpu import COMPONENTS  # noqa: E402
from apps.bench.report.markdown import fmt, fmt_pct, table  # noqa: E402
from apps.bench.run.submit_cells import SUBMIT  # noqa: E402
from apps.jobs.versions import API_VERSION

COST_COMPONENTS = ("broker", "workers", "postgres")
DPI = 110
CPU_INTRO = (
    "CPU seconds per component over each cell's measured window (load start -> drained), "
    "sampled with psutil about once a second, divided by the cell's jobs. `postgres` and "
    "`broker` are the whole shared services; `other` is the rest of the machine (other "
    "users of this host included). Instrument = (loadgen + bench) / (wall x cores); "
    "busy = every component / (wall x cores)."
)
COST_INTRO = (
    "CPU seconds per 1,000 noop jobs of the queue's own parts (broker + workers + database), "
    "from the noop cells: the cost figure for comparing backends."
)
SUBMIT_INTRO = (
    "Submit cells POST noop jobs with U concurrent users on keep-alive connections "
    "(apps.bench.run.loadgen), workers running. Closed loop: every user POSTs J times back to "
    "back. Sustained: the highest open-loop rate (users x POSTs/s each) whose p99 stayed "
    "within 50 ms with no error; '-' when the first step already missed."
)


def label(spec: dict) -> str:
    """'v3 db noop W2 u4x8': the target with its backend name."""
    name = spec["target"]
    backend = spec.get("backend", "")
    if spec.get("version") != API_VERSION and backend and backend not in name:
        name = f"{name} {backend}"
    return f"{name} {spec['workload']} W{spec['workers']} u{spec['users']}x{spec['jobs_per_user']}"


def _cpu_cells(summaries: list[dict]) -> list[dict]:
    return [s for s in summaries if s["status"] == "ok" and s["metrics"].get("cpu_s")]


def cpu_table(summaries: list[dict]) -> list[str]:
    """CPU-ms per job per component, the instrument's share and how busy the machine was."""
    rows = []
    for s in _cpu_cells(summaries):
        per_job = s["metrics"].get("cpu_ms_per_job") or {}
        rows.append(
            [
                label(s["spec"]),
                *[fmt(per_job.get(c), 2) for c in COMPONENTS],
                fmt_pct(s["metrics"].get("instrument_share")),
                fmt_pct(s["metrics"].get("machine_busy_share")),
            ]
        )
    if not rows:
        return []
    header = ["cell", *COMPONENTS, "instrument", "busy"]
    return ["## Where the cores went (CPU-ms per job)", "", CPU_INTRO, ""] + table(
        header, rows, "l" + "r" * (len(header) - 1)
    )


def cost_table(summaries: list[dict]) -> list[str]:
    """CPU seconds per 1,000 noop jobs (broker + workers + database), per backend and W."""
    rows = []
    for s in _cpu_cells(summaries):
        if s["spec"]["workload"] != "noop":
            continue
        per_job = s["metrics"].get("cpu_ms_per_job") or {}
        parts = [per_job.get(c) or 0.0 for c in COST_COMPONENTS]  # ms/job == s per 1,000 jobs
        spec = s["spec"]
        rows.append(
            [
                spec["backend"],
                spec["target"],
                spec["workers"],
                *[fmt(p, 2) for p in parts],
                fmt(sum(parts), 2),
            ]
        )
    if not rows:
        return []
    header = ["backend", "target", "W", *COST_COMPONENTS, "total (CPU-s / 1,000 jobs)"]
    return ["## Cost: CPU per 1,000 noop jobs", "", COST_INTRO, ""] + table(header, rows, "llrrrrr")


def submit_table(summaries: list[dict]) -> list[str]:
    """Submit throughput, latency percentiles, errors by status and the sustained rate."""
    rows = []
    for s in summaries:
        if s["status"] != "ok" or s["spec"]["workload"] != SUBMIT:
            continue
        m, spec = s["metrics"], s["spec"]
        rows.append(
            [
                f"{spec['target']} ({spec['backend']})",
                spec["workers"],
                f"{spec['users']} x {spec['jobs_per_user']}",
                fmt(m.get("submit_rps"), 0),
                fmt(m.get("submit_p50_ms")),
                fmt(m.get("submit_p99_ms")),
                fmt(m.get("submit_p999_ms")),
                _statuses(m.get("submit_status_counts")),
                fmt(m.get("submit_5xx"), 0),
                fmt(m.get("submit_sustained_rps"), 0),
                f"{fmt(m.get('ladder_steps'), 0)} ({fmt(m.get('ladder_errors'), 0)} errors)",
            ]
        )
    if not rows:
        return []
    header = [
        "target",
        "W",
        "users x POSTs",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "statuses",
        "5xx",
        "sustained req/s (p99 <= 50 ms)",
        "ladder steps",
    ]
    return ["## Submit capacity", "", SUBMIT_INTRO, ""] + table(header, rows, "lrlrrrrlrrl")


def _statuses(counts: dict | None) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{code}: {n:g}" for code, n in sorted(counts.items()))


def sections(summaries: list[dict]) -> list[list[str]]:
    """Every section this module adds to report.md (empty ones left out)."""
    return [p for p in (submit_table(summaries), cpu_table(summaries), cost_table(summaries)) if p]


def plot_cpu(summaries: list[dict], path: Path) -> bool:
    """Stacked bars, one per cell: each component's share of the machine (wall x cores)."""
    cells = _cpu_cells(summaries)
    if not cells:
        return False
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(cells) + 3), 5))
    bottoms = [0.0] * len(cells)
    for comp in COMPONENTS:
        values = [_share(s, comp) for s in cells]
        ax.bar(range(len(cells)), values, 0.7, bottom=bottoms, label=comp)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.set_xticks(
        range(len(cells)),
        [label(s["spec"]) for s in cells],
        rotation=30,
        ha="right",
        fontsize="small",
    )
    ax.set_ylim(0, 100)
    ax.set(ylabel="% of the machine (wall x cores)", title="where the cores went, per cell")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def _share(summary: dict, comp: str) -> float:
    m = summary["metrics"]
    wall, busy = m.get("cpu_wall_s") or 0.0, m.get("machine_busy_share")
    total = sum((m.get("cpu_s") or {}).values())
    if not wall or not busy or not total:
        return 0.0
    return 100.0 * (m["cpu_s"].get(comp) or 0.0) / total * busy
