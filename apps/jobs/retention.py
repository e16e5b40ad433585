"""Retention, run by the relay every PURGE_INTERVAL_S (and by `manage.py purge_jobs`):
fail jobs stuck unfinished past JOB_MAX_AGE_S, delete finished jobs past the retention
age with their files, and forget workers silent for long."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models.functions import Now

from apps.jobs import services, workers
from apps.jobs.models import FINISHED, JobStatus, OcrJob

log = logging.getLogger("relay")
EXPIRED_CODE = "expired"


def jobs_expire(*, max_age: timedelta) -> int:
    """FAILED (error_code `expired`) for every unfinished job created before now - max_age.
    One guarded UPDATE: a worker still running one loses its claim like after a cancel."""
    stuck = OcrJob.objects.exclude(status__in=FINISHED).filter(created_at__lt=Now() - max_age)
    return stuck.update(
        status=JobStatus.FAILED,
        error=f"unfinished after {max_age.total_seconds():g}s (JOB_MAX_AGE_S): given up",
        error_code=EXPIRED_CODE,
        finished_at=Now(),
        lease_expires_at=None,
    )


def retention_pass() -> dict[str, int]:
    """Expire stuck jobs, then purge old finished ones; the counts of each."""
    expired = jobs_expire(max_age=timedelta(seconds=settings.JOB_MAX_AGE_S))
    purged = services.jobs_purge(older_than=timedelta(days=settings.JOB_RETENTION_DAYS))
    forgotten = workers.workers_expired_delete()
    counts = {"expired": expired, "purged": purged.jobs, "files": purged.files}
    if expired or purged.jobs or forgotten:
        log.info("retention: %s, %d silent workers forgotten", counts, forgotten)
    return counts
