"""A whole bench run: context, bare run_ocr timing, every cell, the files and a BenchRun row.

Ctrl-C (or SIGTERM, turned into KeyboardInterrupt by `runbench`) stops after cleaning up the
current cell; the cells done so far are still written and saved.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from django.conf import settings
from django.utils import timezone

from apps.bench.measure.aggregate import summarize
from apps.bench.models import BenchRun, BenchStatus
from apps.bench.plan import deadline
from apps.bench.plan.cells import CellSpec
from apps.bench.report import chaos_table
from apps.bench.report import long_jobs as long_jobs_table
from apps.bench.report.export import write_all
from apps.bench.report.submit_targets import evaluate_load
from apps.bench.report.targets import evaluate
from apps.bench.run import context
from apps.bench.run.cell import RunConfig, run_cell
from apps.bench.run.families import FULL, FamilyParams, run_family_cell
from apps.bench.run.long_jobs import Params as LongJobsParams
from apps.bench.run.long_jobs import run_long_jobs
from apps.jobs import services
from apps.ocr.corpus import ensure_corpus, resolve
from apps.ocr.engine import PredictRequest, run_ocr
from tasks.backends.registry import reset_backends


@dataclass(frozen=True)
class ChaosSource:
    """Where the faults table comes from: a chaos.json to copy in, or backends to run on."""

    path: Path | None = None
    backends: list[str] = field(default_factory=list)


@dataclass
class BenchOptions:
    """A run: its cells, where to write, and what to hand the cell runner."""

    cells: list[CellSpec]
    config: RunConfig
    bare_runs: int = 3
    command: str = "manage.py runbench"
    params: dict = field(default_factory=dict)
    families: FamilyParams = FULL
    chaos: ChaosSource | None = None
    previous_run: str | None = None  # a run folder to compare verdicts with (stability)
    sweep: bool = False  # the deadline sweep: a row stops at its first N under 50 %
    long_jobs: list[str] | None = None  # aliases of the long-jobs family (None: not run)


@dataclass
class BenchOutcome:
    out_dir: Path
    run: BenchRun
    results: list[dict]
    summaries: list[dict]
    targets: list[dict]


def format_duration(seconds: float) -> str:
    """'1h02m', '3m05s', '42s'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(index: int, total: int, elapsed_s: float, label: str) -> str:
    """'[3/12] v3-ocr-w2-u16x16-r1  elapsed 1m02s  ETA ~5m10s' (ETA: mean cell time)."""
    done = index - 1
    eta = format_duration(elapsed_s / done * (total - done)) if done else "?"
    return f"[{index}/{total}] {label}  elapsed {format_duration(elapsed_s)}  ETA ~{eta}"


FAMILY_LINE = (
    "pickup_p99_ms",
    "burst_throughput",
    "hol_penalty_s",
    "short_p95_s",
    "capacity_per_s",
    "peak_depth",
    "drain_s",
    "lost",
)


def cell_line(result: dict) -> str:
    """One line about a finished cell, for the progress output."""
    if result["status"] != "ok":
        return f"    {result['status']}: {result['note']}"
    m = result["metrics"]
    if result["spec"].get("family", "load") != "load":
        shown = {k: v for k, v in m.items() if k in FAMILY_LINE}
        text = ", ".join(f"{k} {v:.3g}" for k, v in shown.items() if v is not None)
        return f"    ok: {text}" + (f"  ({result['note']})" if result["note"] else "")
    thr = m.get("throughput")
    burst = m.get("burst_throughput")
    extra = f", burst {burst:.1f} jobs/s" if burst else ""
    if m.get("submit_rps"):
        sustained = m.get("submit_sustained_rps")
        extra += f", submit {m['submit_rps']:.0f} req/s, sustained {sustained or 0:g} req/s"
    if m.get("instrument_share") is not None:
        extra += f", instrument {m['instrument_share'] * 100:.1f} %"
    return (
        f"    ok: {m['successes']}/{m['submitted']} in deadline, {m['errors']} errors, "
        f"{m['timeouts']} timeouts, {thr or 0:.2f} jobs/s{extra}"
        + (f"  ({result['note']})" if result["note"] else "")
    )


def measure_bare_ocr(document: str, runs: int) -> dict:
    """Median seconds of in-process run_ocr on `document` (after one untimed warm-up run)."""
    ensure_corpus()
    request = PredictRequest(source=resolve(document), name=document, language="eng")
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        result = run_ocr(request)
        if i:
            times.append(time.perf_counter() - started)
        (Path(settings.MEDIA_ROOT) / result.pdf).unlink(missing_ok=True)
    return {"document": document, "runs": times, "median_s": statistics.median(times)}


def run_bench(options: BenchOptions, *, stream: TextIO | None = None) -> BenchOutcome:
    """Run every cell; always write the files and the BenchRun row, even when interrupted."""
    stream = stream or sys.stderr
    out_dir = options.config.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    context = _context(options)
    run = BenchRun.objects.create(
        git_commit=context["git"]["commit"],
        git_dirty=context["git"]["dirty"],
        machine=context["machine"],
        versions=context["versions"],
        params=context["params"],
        report_path=str(out_dir / "report.md"),
    )
    results: list[dict] = []
    status = BenchStatus.DONE
    try:
        _bare(options, context, stream)
        _run_cells(options, results, stream, stamp=timezone.now().strftime("%y%m%d%H%M%S"))
        _chaos(options, context, stream)
        _long_jobs(options, context, stream)
    except KeyboardInterrupt:
        status = BenchStatus.INTERRUPTED
        stream.write(
            "\ninterrupted: processes of the current cell were stopped; writing what was measured\n"
        )
    except Exception:
        status = BenchStatus.FAILED
        raise
    finally:
        outcome = _finish(options, run, results, context, status)
    return outcome


def _context(options: BenchOptions) -> dict:
    return {
        "machine": context.machine(),
        "versions": context.versions(),
        "git": context.git_info(),
        "params": options.params,
        "command": options.command,
        "started": timezone.now().isoformat(timespec="seconds"),
        "previous_run": options.previous_run,
        "sweep": options.sweep,
    }


def _bare(options: BenchOptions, context: dict, stream: TextIO) -> None:
    if options.bare_runs < 1 or not any(c.workload == "ocr" for c in options.cells):
        return
    stream.write(f"measuring bare run_ocr ({options.bare_runs} runs)...\n")
    context["bare_ocr"] = measure_bare_ocr(options.config.pdf_name, options.bare_runs)
    stream.write(f"    bare run_ocr: {context['bare_ocr']['median_s']:.2f} s\n")


def _chaos(options: BenchOptions, context: dict, stream: TextIO) -> None:
    """Bring chaos.json into the run's folder: copy the given file, or run the command."""
    source, out = options.chaos, options.config.out_dir / "chaos.json"
    if source is None:
        return
    if source.path is not None:
        shutil.copyfile(source.path, out)
        return
    stream.write(f"running manage.py chaos on {', '.join(source.backends)}...\n")
    note = chaos_table.run_chaos(out, options.config.env, source.backends)
    if note:
        context["chaos_note"] = note
        stream.write(f"    chaos: {note}\n")


def _long_jobs(options: BenchOptions, context: dict, stream: TextIO) -> None:
    """The long-jobs family into the run's folder (long_jobs.md/.json/.csv) and report."""
    if options.long_jobs is None:
        return
    stream.write(f"long-jobs family on {', '.join(options.long_jobs)}...\n")
    started = time.monotonic()
    out_dir = options.config.out_dir
    params = LongJobsParams()
    rows = run_long_jobs(out_dir=out_dir, aliases=options.long_jobs, params=params)
    long_jobs_table.write(rows, out_dir, command=options.command, params=asdict(params))
    text = long_jobs_table.markdown(rows, params=asdict(params), level=2)
    context["long_jobs_section"] = text.rstrip("\n").split("\n")
    stream.write(f"    long jobs: {format_duration(time.monotonic() - started)}\n")


BENCH_TAG_RE = r"^b[0-9]{12}-c[0-9]{3}"  # the run tags _run_cells gives (and their suffixes)


def _run_cells(options: BenchOptions, results: list[dict], stream: TextIO, stamp: str) -> None:
    started, total = time.monotonic(), len(options.cells)
    for index, spec in enumerate(options.cells, start=1):
        stream.write(progress_line(index, total, time.monotonic() - started, spec.cell_id) + "\n")
        stream.flush()
        tag = f"b{stamp}-c{index:03d}-r{spec.repeat:02d}"[:64]
        left = services.job_cancel_tagged(tag_regex=BENCH_TAG_RE)  # never run into a cell
        if left:
            stream.write(f"    cancelled {left} unfinished jobs of an earlier cell or run\n")
        if options.sweep and deadline.stopped(spec, results):
            done = [skipped(spec, tag, "its row already fell below 50 % at a smaller N")]
        elif spec.family == "load":
            done = [run_cell(spec, tag, options.config)]
        else:
            done = run_family_cell(spec, tag, options.config, options.families)
        results += done
        for result in done:
            stream.write(cell_line(result) + "\n")
    stream.write(f"all {total} cells done in {format_duration(time.monotonic() - started)}\n")


def skipped(spec: CellSpec, tag: str, note: str) -> dict:
    """The result of a cell that did not run."""
    return {"spec": spec.as_dict(), "cell_id": spec.cell_id, "tag": tag, "status": "skipped",
            "note": note, "metrics": {}}  # fmt: skip


def _finish(
    options: BenchOptions, run: BenchRun, results: list[dict], context: dict, status: str
) -> BenchOutcome:
    reset_backends()
    context.update(
        finished=timezone.now().isoformat(timespec="seconds"),
        interrupted=status == BenchStatus.INTERRUPTED,
        chaos=chaos_table.load_chaos(options.config.out_dir / "chaos.json"),
    )
    summaries = summarize(results)
    bare_s = (context.get("bare_ocr") or {}).get("median_s")
    targets = evaluate(summaries, bare_s=bare_s, cores=context["machine"]["nproc"])
    targets += evaluate_load(summaries)  # instrument share, submit capacity
    report = write_all(options.config.out_dir, results, summaries, targets, context)
    BenchRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(),
        status=status,
        cells=summaries,
        targets=targets,
        bare_ocr_s=bare_s,
        report_path=str(report),
    )
    run.refresh_from_db()
    return BenchOutcome(options.config.out_dir, run, results, summaries, targets)
