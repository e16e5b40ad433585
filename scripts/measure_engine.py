"""Time run_ocr against bare Tesseract (and the OCRmyPDF command line) on one corpus page.

    DJANGO_DEBUG=1 .venv/bin/python scripts/measure_engine.py [--runs 7] [--document sample.pdf]
        [--ablation] [--with-cli]

Every variant runs once to warm up, then ``--runs`` rounds, each round running every
variant once in turn (interleaved), so drift on the machine hits all variants alike.
Reports wall and CPU seconds (this process + its children: Tesseract) as median, min
and max, and the ratio to bare Tesseract: the ratio of the medians, and the median and
range of the per-round ratios (each run_ocr against the bare run of the same round).

Variants: bare ``tesseract page.png out`` on the page image; ``tesseract ... pdf txt``
with ``textonly_pdf=1`` (exactly what the engine's Tesseract run does); ``run_ocr`` as
the engine is; ``run_ocr, before`` with all of docs/engine.md "Cutting the overhead"
turned off (the engine before it). ``--ablation`` adds run_ocr with one change off at a
time; ``--with-cli`` adds ``python -m ocrmypdf`` with the same options (slow).
Run it on an otherwise idle machine; on a shared one, trust CPU more than wall.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
os.environ["OMP_THREAD_LIMIT"] = "1"
django.setup()  # a script entry point: the engine modules below need the settings

import ocrmypdf  # noqa: E402
from django.conf import settings  # noqa: E402

from apps.ocr import corpus, engine, probes  # noqa: E402
from apps.ocr import passthrough as plugin  # noqa: E402
from apps.ocr.engine import PredictRequest, run_ocr  # noqa: E402

BARE = "tesseract txt (bare)"
ALL_ON = {"probe_cache": True, "passthrough": True, "sandwich": True, "stream_output": True}


def cli_command(source: Path, output: Path) -> list[str]:
    """The OCRmyPDF command line with the engine's options (see engine._ocr_options)."""
    return [
        sys.executable, "-m", "ocrmypdf", "--quiet",
        "--jobs", "1", "--output-type", "pdf", "--optimize", "0", "--mode", "skip",
        "--fast-web-view", "1000000000", "--pdf-renderer", "sandwich",
        "--plugin", "apps.ocr.passthrough",
        "--tesseract-timeout", f"{settings.OCR_PAGE_TIMEOUT_S:g}",
        "--max-image-mpixels", f"{settings.OCR_MAX_IMAGE_MPIXELS:g}",
        "-l", "eng", str(source), str(output),
    ]  # fmt: skip


@contextmanager
def engine_configured(
    *, probe_cache: bool, passthrough: bool, sandwich: bool, stream_output: bool
) -> Iterator[None]:
    """Turn the engine's overhead cuts off for one run (all True = the engine as is)."""
    saved = engine._ocr_options, plugin._page_image, engine._ocrmypdf_errors
    if not probe_cache:
        probes.uninstall()
    if not passthrough:
        plugin._page_image = lambda *args: None
    if not sandwich:
        engine._ocr_options = lambda language: {**saved[0](language), "pdf_renderer": "fpdf2"}
    if not stream_output:  # OCRmyPDF writes the path and reads it back (check_pdf)
        engine._ocrmypdf_errors = lambda source, output, options, request: saved[2](
            source, Path(output.name), options, request
        )
    try:
        yield
    finally:
        engine._ocr_options, plugin._page_image, engine._ocrmypdf_errors = saved
        probes.install()


def variants(document: str, work: Path, *, ablation: bool, cli: bool) -> dict[str, Callable]:
    """name -> a callable doing one run."""
    source = corpus.resolve(document)
    image = work / "page.png"
    corpus.render_page(document).save(image, dpi=(300, 300))
    env = {**os.environ, "OMP_THREAD_LIMIT": "1", "PYTHONPATH": str(ROOT)}

    def run(args: list[str]) -> Callable[[], object]:
        return lambda: subprocess.run(args, env=env, check=True, capture_output=True)

    def engine_run(**switches: bool) -> Callable[[], object]:
        def call() -> object:
            with engine_configured(**{**ALL_ON, **switches}):
                return run_ocr(PredictRequest(source=source, name=document))

        return call

    textonly = ["-c", "textonly_pdf=1", str(image), str(work / "t"), "pdf", "txt"]
    runs = {
        BARE: run(["tesseract", str(image), str(work / "bare")]),
        "tesseract pdf+txt": run(["tesseract", *textonly]),
        "run_ocr": engine_run(),
        "run_ocr, before": engine_run(**{key: False for key in ALL_ON}),
    }
    if ablation:
        runs |= {f"run_ocr, no {key}": engine_run(**{key: False}) for key in ALL_ON}
    if cli:
        runs["ocrmypdf CLI"] = run(cli_command(source, work / "cli.pdf"))
    return runs


def cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(runs: dict[str, Callable[[], object]], count: int) -> dict[str, list[tuple]]:
    """name -> [(wall seconds, CPU seconds), ...], one entry per round."""
    for call in runs.values():
        call()  # warm up: imports, plugin set, probe cache, page cache
    times: dict[str, list[tuple]] = {name: [] for name in runs}
    for _ in range(count):
        for name, call in runs.items():
            wall, cpu = time.perf_counter(), cpu_seconds()
            call()
            times[name].append((time.perf_counter() - wall, cpu_seconds() - cpu))
    return times


def versions() -> str:
    tesseract = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
    gs = subprocess.run(["gs", "--version"], capture_output=True, text=True)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.platform()}\n"
        f"python {platform.python_version()}, ocrmypdf {ocrmypdf.__version__}, "
        f"{tesseract.stdout.splitlines()[0]}, ghostscript {gs.stdout.strip()}, "
        f"git {commit.stdout.strip() or 'n/a'}"
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def report(times: dict[str, list[tuple]], document: str, count: int, load: tuple) -> None:
    print(f"{document}, {count} interleaved rounds after one warm-up, OMP_THREAD_LIMIT=1")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load)}, "
          f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    print(
        f"{'variant':<28}{'wall med':>9}{'min':>6}{'max':>6}{'CPU med':>9}{'min':>6}{'max':>6}"
        f"{'CPU ratio':>10}{'per-round ratio: med [min-max]':>32}"
    )
    bare = [cpu for _, cpu in times[BARE]]
    for name, values in times.items():
        walls, cpus = [v[0] for v in values], [v[1] for v in values]
        paired = [cpu / base for cpu, base in zip(cpus, bare, strict=True)]
        print(
            f"{name:<28}{statistics.median(walls):>9.2f}{min(walls):>6.2f}{max(walls):>6.2f}"
            f"{statistics.median(cpus):>9.2f}{min(cpus):>6.2f}{max(cpus):>6.2f}"
            f"{statistics.median(cpus) / statistics.median(bare):>9.2f}x"
            f"{statistics.median(paired):>17.2f}x [{min(paired):.2f}-{max(paired):.2f}]"
        )


def engine_breakdown(document: str, count: int) -> None:
    """Median of each timing key run_ocr reports."""
    source = corpus.resolve(document)
    results = [run_ocr(PredictRequest(source=source, name=document)) for _ in range(count)]
    keys = results[0].timings.keys()
    parts = {key: statistics.median(r.timings[key] for r in results) for key in keys}
    print("run_ocr timings (median s): " + ", ".join(f"{k}={v:.3f}" for k, v in parts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--document", default="sample.pdf")
    parser.add_argument("--ablation", action="store_true", help="one change off at a time")
    parser.add_argument("--with-cli", action="store_true", help="also time python -m ocrmypdf")
    args = parser.parse_args()
    logging.getLogger("ocrmypdf").setLevel(logging.WARNING)
    load_before = os.getloadavg()
    print(versions())
    with tempfile.TemporaryDirectory(prefix="measure-engine-") as tmp:
        settings.MEDIA_ROOT = Path(tmp) / "media"  # keep results out of the real MEDIA_ROOT
        runs = variants(args.document, Path(tmp), ablation=args.ablation, cli=args.with_cli)
        times = measure(runs, args.runs)
        report(times, args.document, args.runs, load_before)
        engine_breakdown(args.document, 3)


if __name__ == "__main__":
    main()
