"""The report's plots, made to be read at a glance: linear axes from zero, seconds, backend
names in legends, the ideal-scaling line and the hardware ceiling."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from apps.bench.measure.cpu import COMPONENTS as CPU_COMPONENTS  # noqa: E402
from apps.bench.measure.metrics import percentile  # noqa: E402
from apps.bench.report.decision import display_name  # noqa: E402

DPI = 110


def _ok(rows: list[dict], family: str, workload: str | None = None) -> list[dict]:
    return [
        r
        for r in rows
        if r["status"] == "ok"
        and r["spec"].get("family", "load") == family
        and (workload is None or r["spec"]["workload"] == workload)
    ]


def _save(fig, path: Path) -> bool:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def plot_scaling(summaries: list[dict], context: dict, path: Path) -> bool:
    """OCR jobs/s vs workers per backend, from 0, with ideal scaling and the core ceiling."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for s in _ok(summaries, "load", "ocr"):
        if s["metrics"].get("throughput") is not None:
            series[display_name(s["spec"])].append(
                (s["spec"]["workers"], s["metrics"]["throughput"])
            )
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    top = max(v for points in series.values() for _, v in points)
    bare = (context.get("bare_ocr") or {}).get("median_s")
    cores = (context.get("machine") or {}).get("nproc") or 2
    max_w = max(w for points in series.values() for w, _ in points)
    if bare:
        xs = [0, max_w]
        ax.plot(xs, [x / bare for x in xs], "k:", label=f"ideal: W / bare run_ocr ({bare:.2f} s)")
        ax.axhline(cores / bare, color="red", ls="--", label=f"ceiling: {cores} cores / bare")
        top = max(top, cores / bare)
    for name, points in sorted(series.items()):
        ax.plot(*zip(*sorted(points), strict=True), marker="o", label=name)
    ax.set(xlim=(0, max_w + 0.2), ylim=(0, top * 1.15), xlabel="workers (W)", ylabel="OCR jobs/s")
    ax.set_xticks(range(0, max_w + 1))
    ax.set_title("OCR throughput vs workers (16 jobs at once)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    return _save(fig, path)


def _durations(result: dict, start: str, end: str, workload: str | None = None) -> list[float]:
    return [
        j[end] - j[start]
        for j in result.get("jobs", [])
        if j.get(start) is not None
        and j.get(end) is not None
        and j.get("status") == "DONE"
        and (workload is None or j.get("workload") == workload)
    ]


def _boxes(ax, groups: dict[str, list[float]], title: str, ylabel: str, clip: bool = False) -> None:
    """Box (quartiles) and whiskers p5-p95 per group; `clip`: y up to 1.5x the highest p95,
    with the clipped maxima written above their boxes (a 1 s outlier hides 10 ms boxes)."""
    names = [n for n, v in groups.items() if v]
    ax.boxplot([groups[n] for n in names], tick_labels=names, whis=(5, 95), showfliers=True)
    ax.set_ylim(bottom=0)
    top = 1.5 * max(percentile(groups[n], 95) or 0.0 for n in names) if names else 0.0
    if clip and top > 0:
        ax.set_ylim(0, top)
        for i, name in enumerate(names, start=1):
            high = max(groups[name])
            if high > top:
                ax.annotate(f"max {high:,.0f}", (i, top), ha="center", va="top", fontsize="x-small")
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", rotation=30, labelsize="small")
    ax.grid(axis="y", alpha=0.3)


def plot_latency(results: list[dict], context: dict, path: Path) -> bool:
    """Box plots (whiskers p5-p95) in seconds: OCR end-to-end at W=cores, short jobs in mixed."""
    cores = (context.get("machine") or {}).get("nproc") or 2
    runs = [r for r in _ok(results, "load", "ocr") if r.get("jobs")]
    shown_w: dict[str, int] = {}  # backend -> W shown: cores, else the largest W it ran
    for r in runs:
        name, w = display_name(r["spec"]), r["spec"]["workers"]
        best = shown_w.get(name)
        shown_w[name] = w if best is None or abs(w - cores) < abs(best - cores) else best
    ocr: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        if r["spec"]["workers"] == shown_w[display_name(r["spec"])]:
            ocr[display_name(r["spec"])] += _durations(r, "created_at", "finished_at")
    mixed: dict[str, list[float]] = defaultdict(list)
    for r in _ok(results, "mixed"):
        short = min(
            (j.get("workload") or "" for j in r.get("jobs", [])), key=_workload_s, default=""
        )
        mixed[display_name(r["spec"])] += _durations(r, "created_at", "finished_at", short)
    panels = [(g, t) for g, t in (
        (ocr, f"OCR end to end, 16 jobs at once, W={cores} (V0/V1: 1 server)"),
        (mixed, "short jobs while long ones run (mixed sizes)"),
    ) if any(g.values())]  # fmt: skip
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.8), squeeze=False)
    for ax, (groups, title) in zip(axes[0], panels, strict=True):
        _boxes(ax, dict(sorted(groups.items())), title, "seconds")
    return _save(fig, path)


def _workload_s(workload: str) -> float:
    _, _, value = workload.partition(":")
    try:
        return float(value)
    except ValueError:
        return 0.0


def plot_pickup(results: list[dict], context: dict, path: Path) -> bool:
    """Pickup latency of noop jobs at idle (one at a time), ms, box plots per backend."""
    cores = (context.get("machine") or {}).get("nproc") or 2
    groups: dict[str, list[float]] = defaultdict(list)
    for r in _ok(results, "pickup"):
        if r["spec"]["workers"] == cores:
            groups[display_name(r["spec"])] += [
                v * 1000 for v in _durations(r, "queued_at", "started_at")
            ]
    if not any(groups.values()):
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    title = f"pickup at idle (queued -> started), W={cores}"
    _boxes(ax, dict(sorted(groups.items())), title, "ms", clip=True)
    return _save(fig, path)


def plot_queue_depth(results: list[dict], path: Path) -> bool:
    """Overload: jobs waiting (created, not started) over time, one line per backend."""
    first: dict[str, dict] = {}
    for r in _ok(results, "overload"):
        if (r.get("series") or {}).get("depth"):
            first.setdefault(display_name(r["spec"]), r)  # one run per backend: readable
    runs = list(first.values())
    if not runs:
        return False
    fig, (ax, rss) = plt.subplots(1, 2, figsize=(13, 4.5))
    for r in runs:
        name = display_name(r["spec"])
        ax.plot(*zip(*r["series"]["depth"], strict=True), label=name)
        if r["series"].get("broker_rss_mb"):
            rss.plot(*zip(*r["series"]["broker_rss_mb"], strict=True), label=name)
        stop = r["metrics"].get("arrivals_s")
        if stop:
            ax.axvline(stop, color="grey", ls=":", lw=0.8)
    ax.set(title="overload: queue depth (arrivals at 1.5x capacity, dotted: stop)",
           xlabel="seconds", ylabel="jobs waiting", ylim=(0, None), xlim=(0, None))  # fmt: skip
    rss.set(title="broker RSS during overload", xlabel="seconds", ylabel="MB", ylim=(0, None))
    for a in (ax, rss):
        a.grid(alpha=0.3)
        a.legend(fontsize="small")
    return _save(fig, path)


def plot_cpu(results: list[dict], path: Path) -> bool:
    """Stacked CPU-ms per job per component, per backend (pickup family, else OCR cells)."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        cpu = r.get("metrics", {}).get("cpu_ms_per_job")
        if r["status"] == "ok" and cpu:
            label = f"{display_name(r['spec'])} {r['spec']['workload']} W={r['spec']['workers']}"
            for comp, value in cpu.items():
                per[label][comp].append(value or 0.0)
    if not per:
        return False
    labels = sorted(per)
    fig, ax = plt.subplots(figsize=(max(7, 0.5 * len(labels) + 3), 5))
    bottom = [0.0] * len(labels)
    for comp in CPU_COMPONENTS:
        heights = [_mean(per[label].get(comp, [])) for label in labels]
        ax.bar(labels, heights, bottom=bottom, label=comp)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set(title="CPU per job by component", ylabel="CPU ms per job")
    ax.tick_params(axis="x", rotation=60, labelsize="x-small")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def write_charts(summaries: list[dict], results: list[dict], context: dict, out: Path) -> list[str]:
    """Write every chart the run allows; the file names written."""
    made = {
        "throughput.png": plot_scaling(summaries, context, out / "throughput.png"),
        "latency.png": plot_latency(results, context, out / "latency.png"),
        "pickup.png": plot_pickup(results, context, out / "pickup.png"),
        "queue_depth.png": plot_queue_depth(results, out / "queue_depth.png"),
        "cpu.png": plot_cpu(results, out / "cpu.png"),
    }
    return [name for name, ok in made.items() if ok]
