"""What a job does once claimed. `ocr` is the real work; the others isolate the queue."""

import ctypes
import os
import time
from pathlib import Path

from apps.jobs.models import OcrJob
from apps.jobs.services import JobResult

WORKLOAD_OVERRIDE_ENV = "OCRLAB_WORKLOAD_OVERRIDE"  # set by `runworker --workload`
MAX_SECONDS = 3600.0


class WorkloadError(Exception):
    """The workload failed; the message is stored on the job. A permanent error (bad
    input) is not retried; a transient one is, up to the job's attempts. `code` is the
    machine-readable reason (apps.jobs.retry.ErrorCode or an OCR engine code)."""

    def __init__(self, message: str, *, permanent: bool = False, code: str = ""):
        super().__init__(message)
        self.permanent = permanent
        self.code = code or "workload_failed"


TRANSIENT_OCR_CODES = {"timeout", "ocr_failed"}


def parse_workload(spec: str) -> tuple[str, float]:
    """Validate `ocr`, `noop`, `fail`, `sleep:S`, `cpu:S`, `hang:S` (S seconds inside C
    code, where no Python signal handler runs) or `alloc:MB` (allocate MB megabytes: an
    allocation bomb for the memory limit); raise ValueError otherwise."""
    name, _, arg = spec.strip().partition(":")
    if name in {"ocr", "noop", "fail"} and not arg:
        return name, 0.0
    if name in {"sleep", "cpu", "hang", "alloc"}:
        try:
            seconds = float(arg)
        except ValueError:
            raise ValueError(f"workload {name!r} needs seconds, e.g. {name}:0.5") from None
        if not 0 <= seconds <= MAX_SECONDS:
            raise ValueError(f"workload seconds must be between 0 and {MAX_SECONDS:g}")
        return name, seconds
    raise ValueError(
        f"unknown workload {spec!r}; use ocr, noop, fail, sleep:S, cpu:S, hang:S or alloc:MB"
    )


def effective_workload(job: OcrJob) -> str:
    return os.environ.get(WORKLOAD_OVERRIDE_ENV) or job.workload


def run_workload(job: OcrJob) -> JobResult:
    return run_job_workload(job, effective_workload(job))


def run_job_workload(job: OcrJob, spec: str) -> JobResult:
    """Run workload `spec` for `job` in this process (tasks.child calls it)."""
    name, seconds = parse_workload(spec)
    if name == "ocr":
        return _ocr(job)
    if name == "fail":
        raise WorkloadError("workload 'fail' always fails (used to test retries)")
    if name == "sleep":
        time.sleep(seconds)
    elif name == "cpu":
        _spin(seconds)
    elif name == "hang":
        ctypes.CDLL(None).sleep(int(seconds))  # libc sleep(3): blocks inside C code
    elif name == "alloc":
        block = bytearray(int(seconds * 1024 * 1024))  # one malloc: MemoryError past RLIMIT_AS
        del block
    return JobResult(timings={"total": seconds})


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x = (x * 31 + 7) % 1_000_003


def _ocr(job: OcrJob) -> JobResult:
    from apps.ocr.corpus import resolve
    from apps.ocr.engine import OcrError, PredictRequest, run_ocr

    source = Path(job.upload.path) if job.upload else resolve(job.document)
    try:
        result = run_ocr(PredictRequest(source=source, name=job.document, language=job.language))
    except OcrError as exc:
        permanent = exc.code not in TRANSIENT_OCR_CODES
        raise WorkloadError(
            f"{exc.code}: {exc.reason}", permanent=permanent, code=exc.code
        ) from exc
    return JobResult(
        text=result.text, pages=result.page_count, pdf=result.pdf, timings=result.timings
    )
