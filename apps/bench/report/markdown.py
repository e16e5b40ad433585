"""report.md: the reference table, the seed beside it, targets, throughput, latency, context."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from apps.bench.measure.aggregate import metric
from apps.bench.report.targets import REFERENCE

NONE = "-"


def fmt(value: float | None, digits: int = 1) -> str:
    """A number with `digits` decimals, '-' for None."""
    return NONE if value is None else f"{value:,.{digits}f}"


def fmt_pct(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.1f} %"


def count_ratio(count: float | None, ratio: float | None) -> str:
    """'12 (75.0 %)'."""
    return NONE if count is None else f"{count:g} ({fmt_pct(ratio)})"


def table(header: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    """Markdown table lines; `align` is one char per column, 'l' or 'r' (default 'l')."""
    marks = [("---:" if a == "r" else "---") for a in align.ljust(len(header), "l")[: len(header)]]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _ok(summaries: list[dict]) -> list[dict]:
    return [s for s in summaries if s["status"] == "ok"]


def reference_cells(summaries: list[dict]) -> tuple[str, list[dict]]:
    """The first table's caption and cells: 16 x 1 at 60 s OCR, else the nearest we have."""
    ok = _ok(summaries)
    ocr = [s for s in ok if s["spec"]["workload"] == "ocr"]
    ref = [s for s in ocr if all(s["spec"][k] == v for k, v in REFERENCE.items())]
    if ref:
        return "16 jobs submitted at once, 60 s deadline, OCR (the reference scenario)", ref
    cells = ocr or ok
    what = "OCR" if ocr else "every workload"
    return (
        f"the 16 jobs at once / 60 s reference was not run; {what}, as run "
        "(users x jobs and deadline per row)"
    ), cells


def reference_table(summaries: list[dict]) -> list[str]:
    """Workers x successes and errors with ratios, like the reference study's table."""
    caption, cells = reference_cells(summaries)
    rows = []
    for s in sorted(cells, key=lambda s: (s["spec"]["target"], s["spec"]["workers"])):
        spec, m = s["spec"], s["metrics"]
        rows.append(
            [
                spec["target"],
                spec["workers"],
                f"{spec['users']} x {spec['jobs_per_user']} / {spec['deadline_s']:g} s",
                count_ratio(m.get("successes"), m.get("success_ratio")),
                count_ratio(m.get("errors"), m.get("error_ratio")),
                count_ratio(m.get("timeouts"), m.get("timeout_ratio")),
            ]
        )
    header = ["target", "workers", "users x jobs / deadline", "successes", "errors", "timeouts"]
    if not rows:
        return ["## Successes and errors", "", "Not measured: this run had no OCR load cells."]
    return [f"## Successes and errors: {caption}", ""] + table(header, rows, "lrlrrr")


SEED = {1: 25.0, 2: 37.5, 4: 50.0}  # the seed study: % of 16 jobs done within 60 s, per W
SEED_INTRO = (
    "The seed study (k6, VUS = ITERATIONS = 16, 60 s deadline, whatever the broker) finished "
    "25 / 37.5 / 50 % of its 16 jobs with 1 / 2 / 4 workers."
)
SEED_LAB_NOTE = (
    "Here the slowest job of the same scenario is well inside the deadline, so the scenario "
    "cannot tell designs apart: the deadline sweep (`runbench --family deadline`) finds the N "
    "where it bites."
)
SEED_NOTE = f"{SEED_INTRO} {SEED_LAB_NOTE}"
SEED_ENGINE_NOTE = (
    "Rows marked seed engine ran the seed's OCR (`runbench --engine-mode seed`): the "
    "`ocrmypdf` command line in a subprocess with its defaults (`--jobs` = CPU count, PDF/A "
    "output, default optimization) and Tesseract's OpenMP threads uncapped (no "
    "`OMP_THREAD_LIMIT`), as the seed's OCR server likely ran it; the lab's engine calls "
    "OCRmyPDF's API with one job and one thread per process (docs/engine.md)."
)
SEED_ENGINE_LABEL = "seed engine: ocrmypdf CLI, default threads"


def engine_target(spec: dict) -> str:
    """The target, with the OCR engine when it is not the lab's: "v2 (seed engine: ...)"."""
    engine = spec.get("engine", "lab")
    if engine == "lab":
        return spec["target"]
    label = SEED_ENGINE_LABEL if engine == "seed" else f"{engine} engine"
    return f"{spec['target']} ({label})"


def seed_table(summaries: list[dict]) -> list[str]:
    """The seed's success ratios beside this run's reference cells, with the slowest job."""
    _, cells = reference_cells(summaries)
    ref = [s for s in cells if all(s["spec"][k] == v for k, v in REFERENCE.items())]
    if not ref:
        return []
    rows = []
    for w, seed_pct in SEED.items():
        for s in sorted(
            (s for s in ref if s["spec"]["workers"] == w), key=lambda s: engine_target(s["spec"])
        ):
            m, target = s["metrics"], engine_target(s["spec"])
            slowest = m.get("e2e_max_ms") or m.get("e2e_p99_ms")
            rows.append([str(w), f"{seed_pct:g} %", target, fmt_pct(m.get("success_ratio")),
                         NONE if slowest is None else f"{slowest / 1000:.1f} s"])  # fmt: skip
    header = ["workers", "seed: done in 60 s", "here: target", "done in 60 s", "slowest job"]
    return ["## The seed study beside this run", "", *_seed_notes(ref)] + table(
        header, rows, "rrlrr"
    )


def _seed_notes(cells: list[dict]) -> list[str]:
    """The seed's numbers; what lab-engine rows show; what seed-engine rows are."""
    engines = {s["spec"].get("engine", "lab") for s in cells}
    note = SEED_NOTE if "lab" in engines else SEED_INTRO
    return [note, "", SEED_ENGINE_NOTE, ""] if engines - {"lab"} else [note, ""]


def targets_table(targets: list[dict]) -> list[str]:
    """Measured value, target and met / not met per check."""
    rows = [
        [t["check"], t["scope"], _measured(t), t["target"], _verdict(t["met"]), t["detail"]]
        for t in targets
    ]
    header = ["check", "scope", "measured", "target", "result", "detail"]
    return ["## Targets", "", "Benchmarks, not tests: a miss is a finding.", ""] + table(
        header, rows, "llrlll"
    )


def _measured(target: dict) -> str:
    value, unit = target["measured"], target["unit"]
    if value is None:
        return "not measured"
    return {
        "x": f"{value:.2f}x",
        "%": fmt_pct(value),
        "ms": f"{value:.1f} ms",
        "jobs/s": f"{value:.1f} jobs/s",
    }.get(unit, f"{value:g}")


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "NOT met")


def throughput_table(summaries: list[dict]) -> list[str]:
    """Jobs/s (scaling efficiency) per workers count, one row per target and scenario."""
    ok = _ok(summaries)
    workers = sorted({s["spec"]["workers"] for s in ok})
    series: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for s in ok:
        spec = s["spec"]
        series[(spec["target"], spec["workload"], spec["users"], spec["jobs_per_user"])][
            spec["workers"]
        ] = s
    rows = []
    for (target, workload, users, jobs), by_w in series.items():
        rows.append([target, workload, f"{users} x {jobs}", *[_thr(by_w.get(w)) for w in workers]])
        if any(metric(s, "burst_throughput") for s in by_w.values()):
            burst = [fmt(metric(by_w.get(w), "burst_throughput"), 1) for w in workers]
            rows.append([target, f"{workload} burst", "-", *burst])
    header = ["target", "workload", "users x jobs", *[f"W={w}" for w in workers]]
    intro = (
        "Jobs/s = finished jobs / (last finished - first created); in brackets the "
        "scaling efficiency thr(W) / (W x thr(1)). Locust users wait for each job, so at few "
        "users this is bounded by users / latency; the `noop burst` rows are the capacity: "
        "N noop jobs published at once from the bench process, drained by the same workers."
    )
    return ["## Throughput (jobs/s) and scaling efficiency", "", intro, ""] + table(
        header, rows, "lll" + "r" * len(workers)
    )


def _thr(summary: dict | None) -> str:
    if summary is None:
        return NONE
    m = summary["metrics"]
    eff = m.get("scaling_efficiency")
    return fmt(m.get("throughput"), 2) + ("" if eff is None else f" ({eff:.2f})")


LATENCY_COLUMNS = {
    "e2e p50": "e2e_p50_ms",
    "e2e p95": "e2e_p95_ms",
    "e2e p99": "e2e_p99_ms",
    "pickup p50": "pickup_p50_ms",
    "pickup p99": "pickup_p99_ms",
    "service p50": "service_p50_ms",
    "submit p50": "submit_p50_ms",
    "submit p99": "submit_p99_ms",
}
LATENCY_INTRO = (
    "End to end = created -> finished (DONE jobs); pickup = queued -> started; service = "
    "started -> finished; submit = locust's submit request. Medians over repeats."
)


def latency_table(summaries: list[dict]) -> list[str]:
    """Latency percentiles (ms) per cell, from the job rows and locust's submit line."""
    rows = []
    for s in _ok(summaries):
        spec, m = s["spec"], s["metrics"]
        scenario = f"{spec['users']} x {spec['jobs_per_user']}"
        values = [fmt(m.get(name)) for name in LATENCY_COLUMNS.values()]
        rows.append(
            [
                spec["target"],
                spec["workload"],
                spec["workers"],
                scenario,
                *values,
                s.get("repeats", 1),
            ]
        )
    header = ["target", "workload", "W", "users x jobs", *LATENCY_COLUMNS, "runs"]
    align = "llrl" + "r" * (len(LATENCY_COLUMNS) + 1)
    return ["## Latency (ms)", "", LATENCY_INTRO, ""] + table(header, rows, align)


def spread_table(summaries: list[dict]) -> list[str]:
    """Min-max over repeats, when a cell ran more than once."""
    rows = []
    for s in _ok(summaries):
        if s.get("repeats", 1) < 2:
            continue
        spec, spread = s["spec"], s["spread"]
        rows.append(
            [
                spec["target"],
                spec["workload"],
                spec["workers"],
                s["repeats"],
                _range(spread.get("throughput"), 2),
                _range(spread.get("e2e_p50_ms"), 1),
                _range(spread.get("success_ratio"), 3),
            ]
        )
    if not rows:
        return []
    header = [
        "target",
        "workload",
        "W",
        "runs",
        "throughput min-max",
        "e2e p50 min-max",
        "success ratio min-max",
    ]
    return ["## Spread over repeats", ""] + table(header, rows, "llrrrrr")


def _range(pair: list | None, digits: int) -> str:
    if not pair or pair[0] is None:
        return NONE
    return f"{fmt(pair[0], digits)} - {fmt(pair[1], digits)}"


def skipped_table(summaries: list[dict]) -> list[str]:
    """Cells that did not run, and why."""
    rows = [
        [
            s["spec"]["target"],
            s["spec"]["workload"],
            s["spec"]["workers"],
            s["status"],
            s["note"].replace("|", "/"),
        ]
        for s in summaries
        if s["status"] != "ok"
    ]
    if not rows:
        return []
    return ["## Skipped or failed cells", ""] + table(
        ["target", "workload", "W", "status", "reason"], rows, "llrll"
    )


def wall_time(context: dict) -> str:
    """': wall time 27 min 12 s' from the run's ISO start and finish ('' when unknown)."""
    try:
        start = datetime.fromisoformat(context["started"])
        end = datetime.fromisoformat(context["finished"])
    except (KeyError, TypeError, ValueError):
        return ""
    minutes, seconds = divmod(int((end - start).total_seconds()), 60)
    return f": wall time {minutes} min {seconds:02d} s"


def context_lines(context: dict) -> list[str]:
    """Machine, versions, commit, command and the bare run_ocr measurement."""
    m, git, bare = context.get("machine", {}), context.get("git", {}), context.get("bare_ocr") or {}
    dirty = " (dirty: uncommitted changes)" if git.get("dirty") else ""
    lines = [
        "## Run",
        "",
        f"- command: `{context.get('command', '')}`",
        f"- started {context.get('started', '')}, finished {context.get('finished', '')}"
        f"{wall_time(context)}{' (interrupted)' if context.get('interrupted') else ''}",
        f"- git commit: `{git.get('commit') or 'unknown'}`{dirty}",
        f"- machine: {m.get('nproc')} cores, {m.get('cpu_model')}, {m.get('ram_gb')} GB RAM, "
        f"{m.get('os')}",
    ]
    if bare:
        runs = ", ".join(f"{t:.2f}" for t in bare.get("runs", []))
        lines.append(
            f"- bare run_ocr on {bare.get('document')}: median "
            f"{bare.get('median_s', 0):.2f} s (runs: {runs})"
        )
    versions = ", ".join(f"{k} {v}" for k, v in context.get("versions", {}).items())
    lines.append(f"- versions: {versions}")
    lines.append("- percentiles: linear interpolation between closest ranks")
    return lines


def render_markdown(
    summaries: list[dict],
    targets: list[dict],
    context: dict,
    plots: list[str],
    extra: Sequence[list[str]] = (),
    *,
    answer: Sequence[list[str]] = (),
    families: Sequence[list[str]] = (),
) -> str:
    """The whole report.md: `answer` first, then the reference table, `families`, the load tables;
    `extra` sections (e.g. CPU, submit capacity) go before the plots."""
    parts = [
        [
            "# OCR job-queue bench",
            "",
            f"Results of `{context.get('command', 'runbench')}` "
            f"({len(summaries)} load cells). Raw data: cells.csv, jobs.csv, cells.json.",
        ]
    ]
    parts += [*answer, reference_table(summaries), seed_table(summaries), *families]
    parts += [
        targets_table(targets),
        throughput_table(summaries),
        latency_table(summaries),
        spread_table(summaries),
        skipped_table(summaries),
        *extra,
    ]
    if plots:
        parts.append(["## Plots", ""] + [f"![{p[:-4]}]({p})" for p in plots])
    parts.append(context_lines(context))
    return "\n\n".join("\n".join(p) for p in parts if p) + "\n"
