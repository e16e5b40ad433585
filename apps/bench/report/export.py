"""Files of a run: cells.csv / cells.json, jobs.csv / jobs.json, report.md, PNGs, index.html."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

from markdown_it import MarkdownIt

from apps.bench.decide import answer as first
from apps.bench.decide.decision import decide
from apps.bench.hosts.findings import section as hosts_section
from apps.bench.report import family_sections as rf
from apps.bench.report.cell_plots import PLOTS
from apps.bench.report.charts import write_charts
from apps.bench.report.cpu_sections import sections as cpu_sections
from apps.bench.report.markdown import render_markdown
from apps.bench.report.sweep import sweep_table

REPLACED = ("throughput.png", "latency.png", "pickup.png")  # drawn by apps.bench.report.charts

SPEC_COLUMNS = [
    "target",
    "kind",
    "version",
    "backend",
    "workers",
    "users",
    "jobs_per_user",
    "workload",
    "deadline_s",
    "repeat",
    "engine",
]
JOB_COLUMNS = [
    "cell_id",
    "tag",
    "id",
    "status",
    "attempts",
    "worker",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
    "pickup_s",
    "service_s",
    "total_s",
    "error",
    "burst",
]


def write_all(
    out_dir: Path, results: list[dict], summaries: list[dict], targets: list[dict], context: dict
) -> Path:
    """Write every file of the run; returns the path of report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_cells_csv(out_dir / "cells.csv", results)
    write_jobs_csv(out_dir / "jobs.csv", results)
    _dump(out_dir / "jobs.json", {r["cell_id"]: r.get("jobs", []) for r in results})
    _dump(
        out_dir / "cells.json",
        {
            "context": context,
            "summaries": summaries,
            "targets": targets,
            "results": [_no_jobs(r) for r in results],
        },
    )
    return write_report(out_dir, results, summaries, targets, context)


def write_report(
    out_dir: Path, results: list[dict], summaries: list[dict], targets: list[dict], context: dict
) -> Path:
    """report.md and index.html (with the plots) of a run; the path of report.md."""
    markdown = render_report(out_dir, results, summaries, targets, context)
    (out_dir / "report.md").write_text(markdown)
    (out_dir / "index.html").write_text(markdown_to_html(markdown, out_dir))
    return out_dir / "report.md"


def render_report(
    out_dir: Path, results: list[dict], summaries: list[dict], targets: list[dict], context: dict
) -> str:
    """Plots and report.md text: the reference table, the answer, the families, the rest."""
    plots = write_charts(summaries, results, context, out_dir)
    plots += [
        name
        for name, plot in PLOTS.items()
        if name not in plots and name not in REPLACED and plot(summaries, out_dir / name)
    ]
    load = [  # the load cells' tables; failed family cells go to "Skipped or failed cells"
        s for s in summaries if s["spec"].get("family", "load") == "load" or s["status"] != "ok"
    ]
    decision = decide(summaries, results, context)
    screen = first.first_screen(decision)
    answer = [screen, first.decision_table(decision)]
    previous = context.get("previous_run")
    if previous:
        stable = stability_section(Path(previous), decision)
        screen[3:3] = ["", f"**Stability:** {stable[2]}"]  # under the pick: is it the same?
        answer.append(stable)
    answer.append(hosts_section(context.get("hosts") or {}))  # bench_report RUN --hosts DIR
    families = [
        sweep_table(summaries) if context.get("sweep") else [],
        rf.pickup_table(summaries),
        rf.mixed_table(summaries),
        rf.overload_table(summaries),
        rf.faults_table(context.get("chaos") or [], context.get("chaos_note", "")),
        rf.cost_table(results),
        context.get("long_jobs_section") or [],  # apps/bench/run/long_jobs.py
    ]
    extra = cpu_sections(load)  # CPU per component, submit capacity
    return render_markdown(load, targets, context, plots, extra, answer=answer, families=families)


def stability_section(previous_dir: Path, decision: dict) -> list[str]:
    """The verdicts that changed since the run in `previous_dir` (judged by today's rule)."""
    data = json.loads((previous_dir / "cells.json").read_text())
    before = decide(data["summaries"], data["results"], data["context"])
    return first.stability(before, decision, previous_dir.name)


def _no_jobs(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("jobs", "burst_jobs")}


def _dump(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, default=str))


def write_cells_csv(path: Path, results: list[dict]) -> None:
    """One row per cell run: spec, status, note and every metric."""
    flat = [flat_metrics(r.get("metrics", {})) for r in results]
    metric_names = sorted({name for m in flat for name in m})
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cell_id", "tag", "status", "note", *SPEC_COLUMNS, *metric_names])
        for r, metrics in zip(results, flat, strict=True):
            writer.writerow(
                [
                    r["cell_id"],
                    r.get("tag", ""),
                    r["status"],
                    r.get("note", ""),
                    *(r["spec"].get(c) for c in SPEC_COLUMNS),
                    *(metrics.get(m) for m in metric_names),
                ]
            )


def flat_metrics(metrics: dict) -> dict:
    """Dict metrics as one column per key: cpu_s {"api": 1.2} -> "cpu_s.api": 1.2."""
    flat = {}
    for name, value in metrics.items():
        if isinstance(value, dict):
            flat.update({f"{name}.{key}": inner for key, inner in value.items()})
        else:
            flat[name] = value
    return flat


def write_jobs_csv(path: Path, results: list[dict]) -> None:
    """One row per job, with its pickup, service and end-to-end seconds."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=JOB_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            for job in r.get("jobs", []):
                writer.writerow(
                    {"cell_id": r["cell_id"], "tag": r.get("tag", ""), **job, **_durations(job)}
                )
            for job in r.get("burst_jobs", []):  # the capacity burst: tag `<tag>-burst`
                tag = f"{r.get('tag', '')}-burst"
                writer.writerow(
                    {"cell_id": r["cell_id"], "tag": tag, **job, **_durations(job), "burst": 1}
                )


def _durations(job: dict) -> dict:
    def between(a: str, b: str) -> float | None:
        x, y = job.get(a), job.get(b)
        return None if x is None or y is None else round(y - x, 6)

    return {
        "pickup_s": between("queued_at", "started_at"),
        "service_s": between("started_at", "finished_at"),
        "total_s": between("created_at", "finished_at"),
    }


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>OCR job-queue bench</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0;font-size:90%}}
td,th{{border:1px solid #ccc;padding:3px 8px}}th{{background:#f3f3f3}}img{{max-width:100%}}
code{{background:#f3f3f3;padding:0 3px}}</style></head><body>
{body}
</body></html>
"""


def markdown_to_html(markdown: str, image_dir: Path) -> str:
    """The report as one self-contained page (markdown-it-py, GFM tables; images inlined)."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return PAGE.format(
        body=re.sub(r'src="([\w.-]+(?:/[\w.-]+)?\.png)"', lambda m: _inline_png(m, image_dir), body)
    )


def _inline_png(match: re.Match, image_dir: Path) -> str:
    path = (image_dir / match.group(1)).resolve()
    if not path.is_file() or not path.is_relative_to(image_dir.resolve()):
        return match.group(0)
    return f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'
