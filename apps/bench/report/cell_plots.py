"""PNG plots of a run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from apps.bench.report.cpu_sections import plot_cpu  # noqa: E402

DPI = 110


def _series(summaries: list[dict], workload: str, name: str) -> dict[str, list[tuple]]:
    """target (users x jobs) -> sorted [(workers, value of `name`)] for one workload."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for s in summaries:
        spec, value = s["spec"], s["metrics"].get(name)
        if s["status"] == "ok" and spec["workload"] == workload and value is not None:
            label = f"{spec['target']} ({spec['users']}x{spec['jobs_per_user']})"
            series[label].append((spec["workers"], value))
    return {label: sorted(points) for label, points in series.items()}


def _panels(summaries: list[dict]) -> list[tuple[str, str, str]]:
    """(title, workload, metric) per panel: each workload, plus the noop burst if run."""
    ok = [s for s in summaries if s["status"] == "ok"]
    panels = [
        (f"throughput, workload {w}", w, "throughput")
        for w in sorted({s["spec"]["workload"] for s in ok})
    ]
    if any(s["metrics"].get("burst_throughput") for s in ok):
        panels.append(("noop burst (capacity)", "noop", "burst_throughput"))
    return panels


def plot_throughput(summaries: list[dict], path: Path) -> bool:
    """Throughput vs workers, one line per target, one panel per workload (+ the burst)."""
    panels = _panels(summaries)
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (title, workload, name) in zip(axes[0], panels, strict=True):
        series = _series(summaries, workload, name)
        for label, points in series.items():
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
        ax.set_xticks(sorted({w for points in series.values() for w, _ in points}))
        ax.set(title=title, xlabel="workers", ylabel="jobs/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)


def _bars(ax, labels: list[str], groups: dict[str, list[float | None]], ylabel: str) -> None:
    width = 0.8 / max(len(groups), 1)
    for i, (name, values) in enumerate(groups.items()):
        xs = [x + i * width for x in range(len(labels))]
        ax.bar(xs, [v or 0 for v in values], width, label=name)
    ax.set_xticks(
        [x + width * (len(groups) - 1) / 2 for x in range(len(labels))],
        labels,
        rotation=30,
        ha="right",
        fontsize="small",
    )
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")


def _cells(summaries: list[dict], workload: str | None = None) -> list[dict]:
    return [
        s
        for s in summaries
        if s["status"] == "ok" and (workload is None or s["spec"]["workload"] == workload)
    ]


def _label(spec: dict) -> str:
    return f"{spec['target']} {spec['workload']} w{spec['workers']} u{spec['users']}"


def plot_latency(summaries: list[dict], path: Path) -> bool:
    """End-to-end p50 / p95 / p99 per cell (log scale: noop and OCR differ 1000x)."""
    cells = _cells(summaries)
    if not cells:
        return False
    names = {"p50": "e2e_p50_ms", "p95": "e2e_p95_ms", "p99": "e2e_p99_ms"}
    groups = {k: [s["metrics"].get(v) for s in cells] for k, v in names.items()}
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(cells) + 2), 4.5))
    _bars(ax, [_label(s["spec"]) for s in cells], groups, "end-to-end latency (ms)")
    ax.set_yscale("log")
    ax.set_title("end-to-end latency percentiles (created -> finished)")
    return _save(fig, path)


def plot_pickup(summaries: list[dict], path: Path) -> bool:
    """Pickup latency (queued -> started) p50 / p99 per queue cell."""
    cells = [s for s in _cells(summaries) if s["spec"]["kind"] == "queue"]
    if not cells:
        return False
    groups = {
        "p50": [s["metrics"].get("pickup_p50_ms") for s in cells],
        "p99": [s["metrics"].get("pickup_p99_ms") for s in cells],
    }
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(cells) + 2), 4.5))
    _bars(ax, [_label(s["spec"]) for s in cells], groups, "pickup latency (ms)")
    ax.set_yscale("log")
    ax.set_title("pickup latency (queued -> started)")
    return _save(fig, path)


def _save(fig, path: Path) -> bool:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


PLOTS = {
    "throughput.png": plot_throughput,
    "latency.png": plot_latency,
    "pickup.png": plot_pickup,
    "cpu.png": plot_cpu,  # apps.bench.report.cpu_sections: stacked CPU per component, per cell
}


def write_plots(summaries: list[dict], out_dir: Path) -> list[str]:
    """Write every plot the summaries allow; the file names written."""
    return [name for name, plot in PLOTS.items() if plot(summaries, out_dir / name)]
