"""The one retry policy: which failures retry, how often, and after how long.

A failed attempt carries an error code (`ErrorCode`). Permanent input errors never retry;
a timeout retries at most once (a job that hung twice will hang again); every other code
retries while the job has attempts left. A retry waits an exponential backoff with
jitter, `run_after` on the job: the `db` claim skips it until then and the relay does not
republish it to a broker before then.
"""

import random
from datetime import timedelta

from django.conf import settings


class ErrorCode:
    """Machine-readable reasons stored in `OcrJob.error_code`."""

    TIMEOUT = "timeout"  # past the hard time limit (killed, even inside C code)
    MEMORY = "memory"  # past the per-job memory limit
    OCR_FAILED = "ocr_failed"  # OCRmyPDF failed unexpectedly (transient)
    BAD_INPUT = "bad_input"  # the input cannot be OCRed (permanent)
    CRASHED = "crashed"  # the workload's process died without an answer
    LEASE_LOST = "lease_lost"  # the worker stopped heartbeating (died, paused, cut off)
    NO_ATTEMPTS = "no_attempts"  # claimed with no attempts left
    WORKLOAD = "workload_failed"  # a test workload failed on purpose
    CLIENT_GONE = "client_gone"  # a sync call whose client disconnected
    HTTP_FAILED = "http_failed"  # a sync call that the OCR server did not answer with 200


# OCR engine codes that are the input's fault: retrying cannot help.
PERMANENT = frozenset(
    {
        ErrorCode.BAD_INPUT,
        ErrorCode.MEMORY,
        "encrypted",
        "prior_ocr",
        "too_big",
        "no_text",
        "missing_dependency",
    }
)


def should_retry(*, code: str, attempts: int, max_attempts: int, previous_code: str = "") -> bool:
    """True when a failed attempt with `code` should run again."""
    if code in PERMANENT or attempts >= max_attempts:
        return False
    if code == ErrorCode.TIMEOUT:
        return previous_code != ErrorCode.TIMEOUT  # a timeout retries at most once
    return True


def backoff_s(attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt `attempt + 1`: uniform in [cap/2, cap] ("equal
    jitter"), cap = JOB_RETRY_BASE_S * 2**(attempt - 1), at most JOB_RETRY_MAX_S."""
    cap = min(settings.JOB_RETRY_MAX_S, settings.JOB_RETRY_BASE_S * 2 ** max(0, attempt - 1))
    if cap <= 0:
        return 0.0
    return (rng or random).uniform(cap / 2, cap)


def backoff(attempt: int) -> timedelta:
    return timedelta(seconds=backoff_s(attempt))
