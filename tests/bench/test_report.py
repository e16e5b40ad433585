"""report.md, the exported files and the PNGs, from a fake cell list."""

import csv
import json

from apps.bench.measure.aggregate import summarize
from apps.bench.report.export import markdown_to_html, write_all
from apps.bench.report.markdown import render_markdown
from apps.bench.report.targets import evaluate
from tests.bench.fakes import matrix, result

CONTEXT = {
    "command": "manage.py runbench",
    "machine": {"nproc": 2, "cpu_model": "cpu", "ram_gb": 4.0, "os": "linux"},
    "git": {"commit": "a" * 40, "dirty": True},
    "versions": {"python": "3.12"},
    "bare_ocr": {"document": "sample.pdf", "runs": [2.7, 2.8], "median_s": 2.75},
}


def tables(markdown: str) -> list[list[str]]:
    """Each Markdown table as its list of lines."""
    found, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def render(results=None):
    summaries = summarize(results or matrix())
    return render_markdown(summaries, evaluate(summaries, bare_s=2.75, cores=2), CONTEXT, [])


def test_first_table_is_workers_by_successes_and_errors_at_the_reference():
    markdown = render()
    first = tables(markdown)[0]
    assert cells(first[0]) == [
        "target",
        "workers",
        "users x jobs / deadline",
        "successes",
        "errors",
        "timeouts",
    ]
    rows = [cells(line) for line in first[2:]]
    assert len(rows) == 7  # every OCR cell at 16 x 1 / 60 s (16 jobs at once)
    assert ["v3", "4", "16 x 1 / 60 s", "200 (78.0 %)", "0 (0.0 %)", "56 (22.0 %)"] in rows
    assert "reference scenario" in markdown.split(first[0])[0].splitlines()[-2]


def test_first_table_says_when_the_reference_was_not_run():
    markdown = render([result("v3", "ocr", 1, 0.3, users=2, jobs=2)])
    assert "16 jobs at once / 60 s reference was not run" in markdown
    assert cells(tables(markdown)[0][2])[2] == "2 x 2 / 60 s"


def test_report_has_targets_throughput_latency_skips_and_context():
    markdown = render()
    assert "## Targets" in markdown and "NOT met" in markdown and "| met |" in markdown
    assert "0.70 (0.97)" in markdown  # v3 ocr W=2 throughput (scaling efficiency)
    assert "## Latency (ms)" in markdown and "## Skipped or failed cells" in markdown
    assert "unreachable at 127.0.0.1:9092" in markdown
    assert "a" * 40 in markdown and "dirty" in markdown and "median 2.75 s" in markdown


def test_noop_burst_gets_its_own_throughput_row():
    markdown = render([result("v4", "noop", 1, 20.0, burst_throughput=600.0)])
    assert "| v4 | noop burst | - | 600.0 |" in markdown


def test_write_all_writes_data_plots_and_a_self_contained_page(tmp_path):
    results = matrix()
    results[0]["jobs"] = [
        {
            "id": "j1",
            "status": "DONE",
            "attempts": 1,
            "worker": "w",
            "created_at": 10.0,
            "queued_at": 10.1,
            "started_at": 10.2,
            "finished_at": 13.0,
            "error": "",
        }
    ]
    summaries = summarize(results)
    write_all(tmp_path, results, summaries, evaluate(summaries, bare_s=2.75, cores=2), CONTEXT)
    for name in ("throughput.png", "latency.png"):  # no families: no pickup/overload plots
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "report.md").read_text()
    assert "![throughput](throughput.png)" in report
    page = (tmp_path / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<table>" in page
    with (tmp_path / "jobs.csv").open() as handle:
        (job,) = list(csv.DictReader(handle))
    assert float(job["total_s"]) == 3.0 and float(job["pickup_s"]) == 0.1
    with (tmp_path / "cells.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(results)
    data = json.loads((tmp_path / "cells.json").read_text())
    assert set(data) == {"context", "summaries", "targets", "results"}


def test_markdown_to_html_renders_tables_and_code(tmp_path):
    page = markdown_to_html("# T\n\n`x<y`\n\n| a | b |\n| --- | ---: |\n| 1 | 2 |\n", tmp_path)
    assert "<h1>T</h1>" in page and "<code>x&lt;y</code>" in page
    assert "<th>a</th>" in page and '<td style="text-align:right">2</td>' in page
