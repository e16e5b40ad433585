"""The bench's one wait on job rows: until `count` jobs of a run tag are finished."""

import time

from apps.jobs.models import FINISHED, OcrJob


def wait_finished(tag: str, count: int, timeout_s: float, step_s: float = 0.1) -> bool:
    """True once `count` jobs tagged `tag` are DONE/FAILED/CANCELLED, False at `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if OcrJob.objects.filter(run_tag=tag, status__in=FINISHED).count() >= count:
            return True
        time.sleep(step_s)
    return False
