"""Run a workload (apps/jobs/workloads.py parses the spec) in the workload process
(tasks/child_main.py): `ocr` is the real work; the others isolate the queue."""

import ctypes
import time

from apps.jobs.files import media_path
from apps.jobs.results import JobResult
from apps.jobs.workloads import parse_workload
from apps.ocr.corpus import resolve
from apps.ocr.engine import OcrError, PredictRequest, run_ocr
from tasks.child import WorkRequest

TRANSIENT_OCR_CODES = {"timeout", "ocr_failed"}


class WorkloadError(Exception):
    """The workload failed; the message is stored on the job. A permanent error (bad
    input) is not retried; a transient one is, up to the job's attempts. `code` is the
    machine-readable reason (apps.jobs.retry.ErrorCode or an OCR engine code)."""

    def __init__(self, message: str, *, permanent: bool = False, code: str = ""):
        super().__init__(message)
        self.permanent = permanent
        self.code = code or "workload_failed"


def run_workload(request: WorkRequest) -> JobResult:
    """Run `request.workload` for the job's document in this process."""
    name, seconds = parse_workload(request.workload)
    if name == "ocr":
        return _ocr(request)
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


def _ocr(request: WorkRequest) -> JobResult:
    source = media_path(request.upload) if request.upload else resolve(request.document)
    if source is None:
        raise WorkloadError("the job's upload is not under MEDIA_ROOT", permanent=True)
    try:
        result = run_ocr(
            PredictRequest(source=source, name=request.document, language=request.language)
        )
    except OcrError as exc:
        permanent = exc.code not in TRANSIENT_OCR_CODES
        raise WorkloadError(
            f"{exc.code}: {exc.reason}", permanent=permanent, code=exc.code
        ) from exc
    return JobResult(
        text=result.text, pages=result.page_count, pdf=result.pdf, timings=result.timings
    )
