"""Per-user quotas on submit: jobs in flight (429 + Retry-After), stored bytes (403), and
a backend that has no live worker (409 `no_live_worker`, unless the client asks to queue
anyway). Holders of `jobs.unlimited` or the bench permission are exempt from all three."""

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from rest_framework import status
from rest_framework.exceptions import APIException, PermissionDenied, Throttled

from apps.jobs.models import READY, JobStatus, OcrJob
from apps.jobs.permissions import BENCH_PERMISSION
from apps.jobs.selectors import media_path
from apps.jobs.workers import backend_has_consumer

UNLIMITED_PERMISSION = "jobs.unlimited"
IN_FLIGHT = (*READY, JobStatus.RUNNING)
PERMISSION_CACHE_S = 30  # per API process, like apps/jobs/permissions.py
STORED_BYTES_CACHE_S = 30


class NoLiveWorker(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "no_live_worker"


def is_unlimited(user: User | AnonymousUser) -> bool:
    """Holders of `jobs.unlimited` or the bench permission (never by is_staff alone)."""
    if not user.is_authenticated:
        return False
    key = f"ocrlab:unlimited:{user.pk}"
    allowed = cache.get(key)
    if allowed is None:
        allowed = user.has_perm(UNLIMITED_PERMISSION) or user.has_perm(BENCH_PERMISSION)
        cache.set(key, allowed, PERMISSION_CACHE_S)
    return allowed


def submit_check(*, user: User | AnonymousUser, backend: str, queue_anyway: bool) -> None:
    """Raise the 4xx that refuses this submit, if any."""
    if is_unlimited(user):
        return
    _check_in_flight(user)
    _check_stored_bytes(user)
    if not (queue_anyway or not settings.JOB_REQUIRE_LIVE_WORKER):
        _check_consumer(backend)


def in_flight_admission(user: User | AnonymousUser):
    """The in-flight check to run again under the owner's lock (services.job_submit's
    `admit`), or None when the user has no such limit."""
    if not settings.QUOTA_JOBS_IN_FLIGHT or is_unlimited(user):
        return None
    return lambda: _check_in_flight(user)


def _check_consumer(backend: str) -> None:
    if not backend_has_consumer(backend=backend):
        detail = (
            f"no worker consumes backend {backend!r} now: the job would wait until one "
            'starts. Start one, or send "queue_without_worker": true to queue it anyway.'
        )
        raise NoLiveWorker({"detail": detail, "code": NoLiveWorker.default_code})


def _check_in_flight(user) -> None:
    limit = settings.QUOTA_JOBS_IN_FLIGHT
    if limit and OcrJob.objects.filter(owner=user, status__in=IN_FLIGHT).count() >= limit:
        raise Throttled(
            wait=settings.QUOTA_RETRY_AFTER_S,
            detail=f"you have {limit} jobs pending, queued or running (the most allowed); "
            "submit more when some have finished",
            code="too_many_jobs_in_flight",
        )


def _check_stored_bytes(user) -> None:
    limit = settings.QUOTA_STORED_BYTES
    if limit and stored_bytes(user=user) >= limit:
        raise PermissionDenied(
            detail=f"your jobs keep {limit} bytes of uploads and PDFs (the most allowed); "
            "they are freed when old jobs are purged",
            code="storage_quota_exceeded",
        )


def stored_bytes(*, user) -> int:
    """Bytes of the user's uploads and result PDFs on disk (cached STORED_BYTES_CACHE_S)."""
    key = f"ocrlab:stored-bytes:{user.pk}"
    total = cache.get(key)
    if total is None:
        rows = OcrJob.objects.filter(owner=user).exclude(upload="", result_pdf="")
        total = sum(_size(name) for row in rows.values_list("upload", "result_pdf") for name in row)
        cache.set(key, total, STORED_BYTES_CACHE_S)
    return total


def _size(name: str) -> int:
    path = media_path(name)
    return path.stat().st_size if path is not None and path.is_file() else 0
