"""Every state change of an `OcrJob` happens here, guarded by its current status.

Transitions:  PENDING -> QUEUED -> RUNNING -> DONE | FAILED; RUNNING -> QUEUED for a retry;
RUNNING -> PENDING for an expired lease and QUEUED -> PENDING when a republish fails
(PENDING means "needs a message": the relay sends it). Each is a conditional UPDATE, so
two workers can never both finish a job: a claim that loses (job finished, or running
under a live lease) returns None and the caller acks and skips the message.
"""

import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Least
from django.utils import timezone

from apps.jobs.models import READY, JobStatus, OcrJob

log = logging.getLogger(__name__)


class StaleClaim(Exception):
    """A worker tried to finish a job it no longer holds (lease lost, job reclaimed)."""


@dataclass(frozen=True)
class JobResult:
    text: str = ""
    pages: int | None = None
    pdf: str = ""
    timings: dict = field(default_factory=dict)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_create(
    *,
    version: str,
    backend: str,
    document: str,
    upload=None,
    workload: str = "ocr",
    language: str = "eng",
    run_tag: str = "",
    publish: bool = True,
) -> OcrJob:
    """Insert a PENDING job; after commit, hand it to its backend (the row is the outbox)."""
    with transaction.atomic():
        job = OcrJob.objects.create(
            version=version,
            backend=backend,
            document=document,
            workload=workload,
            language=language,
            run_tag=run_tag,
            max_attempts=settings.JOB_MAX_ATTEMPTS,
        )
        if upload is not None:
            job.upload.save(f"{job.id}-{document}", upload, save=True)
        if publish:
            transaction.on_commit(lambda: job_publish(job_id=job.id, backend=backend))
    return job


def job_publish(*, job_id: UUID, backend: str) -> bool:
    """Send the job to its broker. A failure leaves it PENDING for the relay to retry."""
    from tasks.backends.registry import get_backend

    sent_at = timezone.now()
    try:
        get_backend(backend).publish(job_id)
    except Exception as exc:  # broker down, DNS, auth: the relay republishes later
        log.warning("publish of job %s to %s failed, left PENDING: %s", job_id, backend, exc)
        # A retry or requeue is already QUEUED: without a message it goes back to the relay.
        OcrJob.objects.filter(id=job_id, status=JobStatus.QUEUED).update(status=JobStatus.PENDING)
        return False
    job_mark_queued(job_id=job_id, at=sent_at)
    return True


def job_mark_queued(*, job_id: UUID, at) -> None:
    # A fast worker may have claimed the job already (and set queued_at to its claim time):
    # keep its status, and keep the earlier time, so pickup = started - published.
    OcrJob.objects.filter(id=job_id).update(
        queued_at=Least(F("queued_at"), Value(at)),  # LEAST skips NULL
        published_at=Value(at),
        status=Case(
            When(status=JobStatus.PENDING, then=Value(JobStatus.QUEUED)), default=F("status")
        ),
    )


@transaction.atomic
def job_claim(*, job_id: UUID, worker: str) -> OcrJob | None:
    """Take a ready job: RUNNING, attempt + 1, lease. None if it is not claimable."""
    job = OcrJob.objects.select_for_update().filter(id=job_id).first()
    if job is None or job.status not in READY:
        return None
    return _take(job, worker)


@transaction.atomic
def job_claim_next(*, backend: str, worker: str) -> OcrJob | None:
    """The `db` queue: the oldest ready job of `backend`, skipping rows others are taking."""
    job = (
        OcrJob.objects.select_for_update(skip_locked=True)
        .filter(backend=backend, status__in=READY)
        .order_by("created_at")
        .first()
    )
    return None if job is None else _take(job, worker)


def _take(job: OcrJob, worker: str) -> OcrJob | None:
    if job.attempts >= job.max_attempts:
        _finish(job, JobStatus.FAILED, error=job.error or "no attempts left")
        return None
    now = timezone.now()
    job.status = JobStatus.RUNNING
    job.attempts += 1
    job.worker = worker
    job.started_at = now
    job.queued_at = job.queued_at or now
    job.lease_expires_at = now + timedelta(seconds=settings.JOB_LEASE_S)
    job.save(
        update_fields=[
            "status",
            "attempts",
            "worker",
            "started_at",
            "queued_at",
            "lease_expires_at",
        ]
    )
    return job


def job_start_sync(
    *, version: str, document: str, language: str = "eng", run_tag: str = ""
) -> OcrJob:
    """Record a V0-V2 call: it runs at once, so it is born RUNNING."""
    now = timezone.now()
    return OcrJob.objects.create(
        version=version,
        backend="http",
        document=document,
        language=language,
        run_tag=run_tag,
        status=JobStatus.RUNNING,
        attempts=1,
        max_attempts=1,
        worker="",
        queued_at=now,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=settings.OCR_HTTP_TIMEOUT_S),
    )


def job_heartbeat(*, job_id: UUID, attempt: int) -> bool:
    lease = timezone.now() + timedelta(seconds=settings.JOB_LEASE_S)
    return _running(job_id, attempt).update(lease_expires_at=lease) == 1


def job_succeed(*, job_id: UUID, attempt: int, result: JobResult, worker: str = "") -> None:
    updated = _running(job_id, attempt).update(
        status=JobStatus.DONE,
        finished_at=timezone.now(),
        lease_expires_at=None,
        result_text=result.text,
        result_pages=result.pages,
        result_pdf=result.pdf,
        timings=result.timings,
        error="",
        **({"worker": worker} if worker else {}),
    )
    if updated != 1:
        raise StaleClaim(f"job {job_id} attempt {attempt} is no longer held; result dropped")
    _notify_finished(job_id)


def job_fail(*, job_id: UUID, attempt: int, error: str, retry: bool = True) -> bool:
    """Store the error. Returns True when the job was put back in the queue for a retry."""
    with transaction.atomic():
        job = _running(job_id, attempt).select_for_update().first()
        if job is None:
            raise StaleClaim(f"job {job_id} attempt {attempt} is no longer held; error dropped")
        if retry and job.attempts < job.max_attempts:
            job.status, job.error, job.lease_expires_at = JobStatus.QUEUED, error, None
            job.save(update_fields=["status", "error", "lease_expires_at"])
            return True
        _finish(job, JobStatus.FAILED, error=error)
        return False


def _finish(job: OcrJob, status: str, *, error: str = "") -> None:
    job.status, job.error = status, error
    job.finished_at, job.lease_expires_at = timezone.now(), None
    job.save(update_fields=["status", "error", "finished_at", "lease_expires_at"])
    _notify_finished(job.id)


def finished_channel() -> str:
    """The NOTIFY channel on which `?wait=` requests (apps/jobs/waiting.py) listen."""
    return f"{settings.QUEUE_PREFIX}_finished"


def _notify_finished(job_id: UUID) -> None:
    """Wake the job's waiters; PostgreSQL delivers it when this transaction commits.
    Every change to DONE, FAILED or CANCELLED calls it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [finished_channel(), str(job_id)])


def _running(job_id: UUID, attempt: int):
    return OcrJob.objects.filter(id=job_id, status=JobStatus.RUNNING, attempts=attempt)


def jobs_requeue_expired(*, backend: str) -> list[UUID]:
    """RUNNING jobs whose lease ran out (their worker died): back to PENDING, to be sent."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            OcrJob.objects.select_for_update(skip_locked=True)
            .filter(backend=backend, status=JobStatus.RUNNING, lease_expires_at__lt=now)
            .values_list("id", flat=True)
        )
        OcrJob.objects.filter(id__in=ids).update(
            status=JobStatus.PENDING,
            lease_expires_at=None,
            error=Value("lease expired: worker lost, job requeued"),
        )
    return ids


def jobs_relay(*, backend: str) -> dict[str, int]:
    """The outbox relay: republish jobs that have no message in flight for sure: stale
    PENDING ones (publish failed), lease-expired ones (worker died) and, for brokers, QUEUED
    ones whose message is long overdue (lost before any claim). Duplicates are harmless:
    a claim skips a job that is not ready."""
    from tasks.backends.registry import get_backend

    now = timezone.now()
    expired = jobs_requeue_expired(backend=backend)
    ready = OcrJob.objects.filter(backend=backend)
    stale = ready.filter(
        status=JobStatus.PENDING,
        created_at__lt=now - timedelta(seconds=settings.RELAY_PENDING_GRACE_S),
    )
    if not get_backend(backend).row_is_message:
        overdue = now - timedelta(seconds=settings.RELAY_QUEUED_STALE_S)
        stale = stale | ready.filter(status=JobStatus.QUEUED, published_at__lt=overdue)
    stale_ids = list(stale.values_list("id", flat=True)[:1000])
    published = 0
    for job_id in dict.fromkeys(expired + stale_ids):  # an expired job is PENDING too
        if not job_publish(job_id=job_id, backend=backend):
            break  # broker down: one timeout per pass; the rest stay PENDING for the next
        published += 1
    return {"expired": len(expired), "stale": len(stale_ids), "published": published}


def jobs_delete(*, q: Q | None = None) -> int:
    return OcrJob.objects.filter(q or Q()).delete()[0]
