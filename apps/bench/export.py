"""Files of a run: cells.csv / cells.json, jobs.csv / jobs.json, report.md, PNGs, index.html."""

from __future__ import annotations

import base64
import csv
import html
import json
import re
from pathlib import Path

from apps.bench.cpu_report import sections as cpu_sections
from apps.bench.plots import write_plots
from apps.bench.report import render_markdown

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
    plots = write_plots(summaries, out_dir)
    markdown = render_markdown(summaries, targets, context, plots, cpu_sections(summaries))
    (out_dir / "report.md").write_text(markdown)
    (out_dir / "index.html").write_text(markdown_to_html(markdown, out_dir))
    return out_dir / "report.md"


def _no_jobs(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "jobs"}


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
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px}}
th{{background:#f3f3f3}}td.r{{text-align:right}}img{{max-width:100%}}
code{{background:#f3f3f3;padding:0 3px}}</style></head><body>
{body}
</body></html>
"""


def markdown_to_html(markdown: str, image_dir: Path) -> str:
    """The report as one self-contained page (images inlined); handles what report.md uses."""
    out, rows = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            rows.append(line)
            continue
        if rows:
            out.append(_html_table(rows))
            rows = []
        out.append(_html_line(line, image_dir))
    if rows:
        out.append(_html_table(rows))
    return PAGE.format(body="\n".join(part for part in out if part))


def _inline(text: str) -> str:
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text, quote=False))


def _html_line(line: str, image_dir: Path) -> str:
    if line.startswith("## "):
        return f"<h2>{_inline(line[3:])}</h2>"
    if line.startswith("# "):
        return f"<h1>{_inline(line[2:])}</h1>"
    if line.startswith("- "):
        return f"<li>{_inline(line[2:])}</li>"
    image = re.fullmatch(r"!\[(.*)\]\((.*)\)", line)
    if image:
        data = base64.b64encode((image_dir / image.group(2)).read_bytes()).decode()
        alt = html.escape(image.group(1))
        return f'<p><img alt="{alt}" src="data:image/png;base64,{data}"></p>'
    return f"<p>{_inline(line)}</p>" if line.strip() else ""


def _html_table(lines: list[str]) -> str:
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    header, align, body = cells[0], cells[1], cells[2:]
    right = [a.endswith(":") for a in align]
    head = "".join(f"<th>{_inline(c)}</th>" for c in header)
    trs = [
        "".join(
            f"<td{' class=r' if r else ''}>{_inline(c)}</td>"
            for c, r in zip(row, right, strict=False)
        )
        for row in body
    ]
    return "<table><tr>" + head + "</tr>" + "".join(f"<tr>{tr}</tr>" for tr in trs) + "</table>"
