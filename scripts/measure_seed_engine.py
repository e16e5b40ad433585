"""Time OCR jobs in the lab and the seed engine mode, one alone and N at once.

    DJANGO_DEBUG=1 .venv/bin/python scripts/measure_seed_engine.py [--rounds 2]
        [--concurrent 2] [--document sample.pdf]

Every job runs in a process of its own, like one worker each, with OCR_ENGINE_MODE in its
environment (lab: OCRmyPDF's API, one thread; seed: the ocrmypdf command line with its
defaults, apps/ocr/seed_cli.py). Each process OCRs the document once to warm up, waits for
a start time shared by the jobs of its batch, then times one ``run_ocr`` (wall seconds,
and CPU seconds of the process and its children). Each round runs lab alone, seed alone,
lab x N, seed x N, so drift on a shared machine hits both modes alike. Prints one line
per batch and the seed / lab ratio of the median job time, alone and N at once.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
import django  # noqa: E402

django.setup()
from django.conf import settings  # noqa: E402

from apps.ocr.corpus import ensure_corpus, resolve  # noqa: E402
from apps.ocr.engine import PredictRequest, run_ocr  # noqa: E402

MODES = ("lab", "seed")
WARM_START_S = 20.0  # a batch starts this long after launch: every process warmed up
CHILD_TIMEOUT_S = 300.0


def child(document: str, start_at: float) -> dict:
    """Warm up, wait for `start_at` (epoch seconds), time one run_ocr."""
    request = PredictRequest(source=resolve(document), name=document)
    _ocr_and_clean(request)
    late = time.time() - start_at
    time.sleep(max(0.0, -late))
    cpu, started = _cpu_s(), time.perf_counter()
    _ocr_and_clean(request)
    wall, cpu = time.perf_counter() - started, _cpu_s() - cpu
    return {"mode": settings.OCR_ENGINE_MODE, "wall_s": wall, "cpu_s": cpu, "late_s": late}


def _ocr_and_clean(request: PredictRequest) -> None:
    result = run_ocr(request)
    (Path(settings.MEDIA_ROOT) / result.pdf).unlink(missing_ok=True)


def _cpu_s() -> float:
    own, kids = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def batch(mode: str, count: int, document: str) -> list[dict]:
    """`count` jobs of `mode` at once, one process each."""
    start_at = time.time() + WARM_START_S
    env = {**os.environ, "OCR_ENGINE_MODE": mode}
    command = [sys.executable, __file__, "--child", str(start_at), "--document", document]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(count)
    ]
    return [json.loads(proc.communicate(timeout=CHILD_TIMEOUT_S)[0]) for proc in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--document", default="sample.pdf")
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.document, args.child)))
        return
    ensure_corpus()
    walls: dict[tuple[str, int], list[float]] = {}
    for round_number in range(1, args.rounds + 1):
        for count in (1, args.concurrent):
            for mode in MODES:
                jobs = batch(mode, count, args.document)
                walls.setdefault((mode, count), []).extend(j["wall_s"] for j in jobs)
                print(f"round {round_number} {mode} x{count}: " + _describe(jobs), flush=True)
    print(f"load average: {os.getloadavg()[0]:.1f}, cores: {os.cpu_count()}")
    for count in (1, args.concurrent):
        lab, seed = (statistics.median(walls[(mode, count)]) for mode in MODES)
        print(f"x{count}: median lab {lab:.2f} s, seed {seed:.2f} s, seed / lab {seed / lab:.2f}")


def _describe(jobs: list[dict]) -> str:
    return ", ".join(f"wall {j['wall_s']:.2f} s cpu {j['cpu_s']:.2f} s" for j in jobs)


if __name__ == "__main__":
    main()
