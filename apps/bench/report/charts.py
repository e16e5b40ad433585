"""The report's plots, made to be read at a glance: one colour per backend in every plot,
like compared with like (W = 1 apart from W = cores), error bars from the repeats, tails
on a log axis with p99 marked, and the ceiling from the run's own in-worker service time."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from apps.bench.decide.decision import display_name  # noqa: E402
from apps.bench.measure.cpu import COMPONENTS as CPU_COMPONENTS  # noqa: E402
from apps.bench.measure.metrics import percentile  # noqa: E402
from apps.jobs.workloads import workload_seconds  # noqa: E402

DPI = 110
PALETTE = [plt.get_cmap("tab20")(i) for i in range(20)]


def colours(results: list[dict]) -> dict[str, tuple]:
    """One colour per backend name, the same in every plot of the run (sorted names)."""
    names = sorted({display_name(r["spec"]) for r in results})
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _throughputs(results: list[dict], workers: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for r in _ok(results, "load", "ocr"):
        if r["spec"]["workers"] == workers and r["metrics"].get("throughput"):
            out[display_name(r["spec"])].append(r["metrics"]["throughput"])
    return out


def in_worker_ceiling(results: list[dict], cores: int) -> float | None:
    """cores / the median in-worker service time of the queue cells at W = 1 (jobs/s)."""
    service = [
        r["metrics"]["service_p50_ms"] / 1000
        for r in _ok(results, "load", "ocr")
        if r["spec"]["kind"] == "queue"
        and r["spec"]["workers"] == 1
        and r["metrics"].get("service_p50_ms")
    ]
    return cores / statistics.median(service) if service else None


def _bars(ax, groups: dict[str, list[float]], palette: dict[str, tuple], title: str) -> None:
    """Median bars with min-max error bars, one colour per backend."""
    names = sorted(groups)
    meds = [statistics.median(groups[n]) for n in names]
    err = [[m - min(groups[n]) for n, m in zip(names, meds, strict=True)],
           [max(groups[n]) - m for n, m in zip(names, meds, strict=True)]]  # fmt: skip
    ax.bar(names, meds, yerr=err, capsize=3, color=[palette[n] for n in names])
    for i, n in enumerate(names):
        ax.annotate(f"x{len(groups[n])}", (i, 0), ha="center", va="bottom", fontsize="x-small")
    ax.set(title=title, ylabel="OCR jobs/s")
    ax.tick_params(axis="x", rotation=30, labelsize="small")
    ax.grid(axis="y", alpha=0.3)


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


def plot_scaling(summaries: list[dict], results: list[dict], context: dict, path: Path) -> bool:
    """OCR jobs/s: W = 1 (V0, V1 and the noise floor) beside W = cores, separate panels."""
    cores = (context.get("machine") or {}).get("nproc") or 2
    panels = [(w, g) for w in (1, cores) if (g := _throughputs(results, w))]
    if not panels:
        return False
    palette = colours(results)
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.8), squeeze=False)
    ceiling = in_worker_ceiling(results, cores)
    for ax, (w, groups) in zip(axes[0], panels, strict=True):
        _bars(ax, groups, palette, f"OCR throughput at W = {w} (median, min-max, xN repeats)")
        if w == cores and ceiling:
            ax.axhline(ceiling, color="red", ls="--", lw=1,
                       label=f"ceiling: {cores} cores / in-worker service at W = 1")  # fmt: skip
            ax.legend(fontsize="small", loc="lower right")
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


def _boxes(ax, groups: dict[str, list[float]], title: str, ylabel: str, palette=None) -> None:
    """Box (quartiles), whiskers p5-p95 and every outlier per group, on a log axis so a 1 s
    tail and 10 ms boxes both show; a red tick marks each group's p99."""
    names = [n for n, v in groups.items() if v]
    box = ax.boxplot([groups[n] for n in names], tick_labels=names, whis=(5, 95),
                     showfliers=True, patch_artist=True)  # fmt: skip
    for patch, name in zip(box["boxes"], names, strict=True):
        patch.set_facecolor((palette or {}).get(name, "white"))
    p99 = [percentile(groups[n], 99) for n in names]
    ax.scatter(range(1, len(names) + 1), p99, marker="_", s=200, color="red", zorder=3,
               label="p99")  # fmt: skip
    ax.set_yscale("log")
    ax.legend(fontsize="x-small", loc="upper right")
    ax.set(title=title, ylabel=f"{ylabel} (log)")
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
            (j.get("workload") or "" for j in r.get("jobs", [])), key=workload_seconds, default=""
        )
        mixed[display_name(r["spec"])] += _durations(r, "created_at", "finished_at", short)
    panels = [(g, t) for g, t in (
        (ocr, f"OCR end to end, jobs at once, W={cores}"),
        (mixed, "short jobs while long ones run (mixed sizes)"),
    ) if any(g.values())]  # fmt: skip
    if not panels:
        return False
    palette = colours(results)
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.8), squeeze=False)
    for ax, (groups, title) in zip(axes[0], panels, strict=True):
        _boxes(ax, dict(sorted(groups.items())), title, "seconds", palette)
    return _save(fig, path)


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
    _boxes(ax, dict(sorted(groups.items())), title, "ms", colours(results))
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
    palette = colours(results)
    fig, (ax, rss) = plt.subplots(1, 2, figsize=(13, 4.5))
    for r in runs:
        name = display_name(r["spec"])
        ax.plot(*zip(*r["series"]["depth"], strict=True), label=name, color=palette[name])
        if r["series"].get("broker_rss_mb"):
            rss.plot(*zip(*r["series"]["broker_rss_mb"], strict=True), label=name,
                     color=palette[name])  # fmt: skip
        stop = r["metrics"].get("arrivals_s")
        if stop:
            ax.axvline(stop, color="grey", ls=":", lw=0.8)
    ax.set(title="overload: queue depth (arrivals at 1.5x nominal, dotted: stop)",
           xlabel="seconds", ylabel="jobs waiting", ylim=(0, None), xlim=(0, None))  # fmt: skip
    rss.set(title="broker RSS during overload", xlabel="seconds", ylabel="MB", ylim=(0, None))
    for a in (ax, rss):
        a.grid(alpha=0.3)
        a.legend(fontsize="small")
    return _save(fig, path)


CPU_PANELS = (("load", "ocr", "OCR cells"), ("pickup", None, "noop pickup + burst cells"))


def plot_cpu(results: list[dict], path: Path) -> bool:
    """CPU-ms per job by component, stacked, one bar per backend; one panel per kind of cell
    (OCR at W = cores, noop pickup), each on its own scale."""
    panels = []
    for family, workload, title in CPU_PANELS:
        per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in _ok(results, family, workload):
            for comp, value in (r["metrics"].get("cpu_ms_per_job") or {}).items():
                per[display_name(r["spec"])][comp].append(value or 0.0)
        if per:
            panels.append((title, per))
    if not panels:
        return False
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 4.2 * len(panels)), squeeze=False)
    for ax, (title, per) in zip(axes[:, 0], panels, strict=True):
        labels = sorted(per)
        bottom = [0.0] * len(labels)
        for comp in CPU_COMPONENTS:
            heights = [_mean(per[label].get(comp, [])) for label in labels]
            ax.bar(labels, heights, bottom=bottom, label=comp)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        ax.set(title=f"CPU per job by component: {title} (mean over runs)", ylabel="CPU ms/job")
        ax.tick_params(axis="x", rotation=30, labelsize="small")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="x-small", bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, path)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def write_charts(summaries: list[dict], results: list[dict], context: dict, out: Path) -> list[str]:
    """Write every chart the run allows; the file names written."""
    made = {
        "throughput.png": plot_scaling(summaries, results, context, out / "throughput.png"),
        "latency.png": plot_latency(results, context, out / "latency.png"),
        "pickup.png": plot_pickup(results, context, out / "pickup.png"),
        "queue_depth.png": plot_queue_depth(results, out / "queue_depth.png"),
        "cpu.png": plot_cpu(results, out / "cpu.png"),
    }
    return [name for name, ok in made.items() if ok]
