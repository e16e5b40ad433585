"""Time run_ocr against bare Tesseract and the OCRmyPDF command line on one corpus page.

    DJANGO_DEBUG=1 .venv/bin/python scripts/measure_engine.py [--runs 5] [--document sample.pdf]

Every variant runs once to warm up, then ``--runs`` times, interleaved round-robin so
that drift on the machine hits all variants alike. Prints median, min and max seconds,
the machine and versions. Run it on an otherwise idle machine.
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
os.environ["OMP_THREAD_LIMIT"] = "1"


def setup_django() -> None:
    import django

    django.setup()


def cli_command(source: Path, output: Path) -> list[str]:
    """The OCRmyPDF command line with the engine's options (see engine._ocr_options)."""
    from django.conf import settings

    return [
        sys.executable, "-m", "ocrmypdf", "--quiet",
        "--jobs", "1", "--output-type", "pdf", "--optimize", "0", "--mode", "skip",
        "--fast-web-view", "1000000000",
        "--tesseract-timeout", f"{settings.OCR_PAGE_TIMEOUT_S:g}",
        "--max-image-mpixels", f"{settings.OCR_MAX_IMAGE_MPIXELS:g}",
        "-l", "eng", str(source), str(output),
    ]  # fmt: skip


def variants(document: str, work: Path) -> dict[str, Callable[[], object]]:
    """name -> a callable doing one run."""
    from apps.ocr import corpus
    from apps.ocr.engine import PredictRequest, run_ocr

    source = corpus.resolve(document)
    image = work / "page.png"
    corpus.render_page(document).save(image, dpi=(300, 300))
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def run(args: list[str]) -> Callable[[], object]:
        return lambda: subprocess.run(args, env=env, check=True, capture_output=True)

    return {
        "run_ocr (API)": lambda: run_ocr(PredictRequest(source=source, name=document)),
        "ocrmypdf CLI": run(cli_command(source, work / "cli.pdf")),
        "tesseract txt": run(["tesseract", str(image), str(work / "bare")]),
        "tesseract hocr+txt": run(["tesseract", str(image), str(work / "h"), "hocr", "txt"]),
    }


def cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(runs: dict[str, Callable[[], object]], count: int) -> dict[str, list[tuple]]:
    """name -> [(wall seconds, CPU seconds), ...]."""
    for call in runs.values():
        call()  # warm up: imports, plugin discovery, page cache
    times: dict[str, list[tuple]] = {name: [] for name in runs}
    for _ in range(count):
        for name, call in runs.items():
            wall, cpu = time.perf_counter(), cpu_seconds()
            call()
            times[name].append((time.perf_counter() - wall, cpu_seconds() - cpu))
    return times


def versions() -> str:
    import ocrmypdf

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
    print(f"{document}, {count} runs each after one warm-up, OMP_THREAD_LIMIT=1")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load)}, "
          f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    print(f"{'variant':<22}{'wall median':>12}{'min':>7}{'max':>7}{'CPU median':>12}")
    for name, values in times.items():
        walls, cpus = [v[0] for v in values], [v[1] for v in values]
        print(
            f"{name:<22}{statistics.median(walls):>12.2f}{min(walls):>7.2f}"
            f"{max(walls):>7.2f}{statistics.median(cpus):>12.2f}"
        )


def engine_breakdown(document: str, count: int) -> None:
    """Median of each timing key run_ocr reports."""
    from apps.ocr import corpus
    from apps.ocr.engine import PredictRequest, run_ocr

    source = corpus.resolve(document)
    results = [run_ocr(PredictRequest(source=source, name=document)) for _ in range(count)]
    keys = results[0].timings.keys()
    parts = {key: statistics.median(r.timings[key] for r in results) for key in keys}
    print("run_ocr timings (median s): " + ", ".join(f"{k}={v:.3f}" for k, v in parts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--document", default="sample.pdf")
    args = parser.parse_args()
    setup_django()
    from django.conf import settings

    logging.getLogger("ocrmypdf").setLevel(logging.WARNING)
    load_before = os.getloadavg()
    print(versions())
    with tempfile.TemporaryDirectory(prefix="measure-engine-") as tmp:
        settings.MEDIA_ROOT = Path(tmp) / "media"  # keep results out of the real MEDIA_ROOT
        times = measure(variants(args.document, Path(tmp)), args.runs)
        report(times, args.document, args.runs, load_before)
        engine_breakdown(args.document, args.runs)


if __name__ == "__main__":
    main()
