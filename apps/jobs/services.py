"""Every state change of an `OcrJob` happens here, guarded by its current status.

Transitions:  PENDING -> QUEUED -> RUNNING -> DONE | FAILED; RUNNING -> PENDING for a
retry (with `run_after`, apps/jobs/retry.py) and for an expired lease; QUEUED -> PENDING
when a republish fails (PENDING means "needs a message": the relay sends it once due).
Leases are times of the database's clock (`Now()`), never a host's. Each is a conditional UPDATE, so
two workers can never both finish a job: a claim that loses (job finished, or running
under a live lease) returns None and the caller acks and skips the message. Every claim
gets a fresh `claim_token`; heartbeats and results must name it, so a run that lost its
claim (lease expired, cancelled, then retried from attempt 0) can never store.
"""

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Max, Q, Value, When
from django.db.models.functions import Coalesce, Least, Now
from django.utils import timezone

from apps.jobs import background, versions
from apps.jobs import retry as retry_policy
from apps.jobs.backends import backend_get
from apps.jobs.files import media_path
from apps.jobs.models import FINISHED, READY, JobStatus, OcrJob
from apps.jobs.results import JobResult
from apps.jobs.retry import ErrorCode

log = logging.getLogger(__name__)
SYNC_LEASE_MARGIN_S = 30.0  # a sync call's lease: the HTTP timeout plus this
HTTP_BACKEND = versions.SYNC_BACKEND  # the backend of V0-V2 calls


def _due() -> Q:
    """Jobs whose retry backoff is over (or that never failed)."""
    return Q(run_after__isnull=True) | Q(run_after__lte=Now())


def _lease(seconds: float):
    return Now() + timedelta(seconds=seconds)


class StaleClaim(Exception):
    """A worker tried to finish a job it no longer holds (lease lost, job reclaimed)."""


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
    owner=None,
    idempotency_key: str | None = None,
    publish_after_response: bool = False,
) -> OcrJob:
    """Insert a PENDING job; after commit, hand it to its backend (the row is the outbox):
    at once, or with `publish_after_response` on a background thread (job_publish_soon).
    `owner` (a user, or None for the lab's own jobs) is the only non-staff user to see it."""
    with transaction.atomic():
        job = OcrJob.objects.create(
            owner=owner,
            idempotency_key=idempotency_key,
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
            # robust: a publish that fails after the commit (database gone again) is
            # logged and left to the relay; the job exists, so the answer stays 2xx.
            send = job_publish_soon if publish_after_response else job_publish
            transaction.on_commit(lambda: send(job_id=job.id, backend=backend), robust=True)
    return job


def job_submit(
    *,
    owner,
    idempotency_key: str | None = None,
    admit: Callable[[], None] | None = None,
    **fields,
) -> tuple[OcrJob, bool]:
    """An API submission: (job, created). A repeated `idempotency_key` of the same owner
    returns the first job (created False) instead of a new one; the unique constraint
    decides between concurrent repeats. `admit` (a quota check that raises) runs under a
    per-owner lock in the inserting transaction, so concurrent submits of one owner are
    counted one after another and never pass a limit together. The publish runs after
    the response."""
    if idempotency_key:
        first = OcrJob.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if first is not None:
            return first, False
    with transaction.atomic():
        if admit is not None:
            _lock_owner(owner)
            admit()
        try:
            job = job_create(
                owner=owner, idempotency_key=idempotency_key, publish_after_response=True, **fields
            )
        except IntegrityError:
            if not idempotency_key:
                raise
            return OcrJob.objects.get(owner=owner, idempotency_key=idempotency_key), False
    return job, True


OWNER_LOCK = 0x4F43  # the first key of the per-owner advisory lock ("OC")


def _lock_owner(owner) -> None:
    """A transaction-scoped advisory lock on the owner (released at commit or rollback)."""
    if owner is not None and owner.pk is not None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [OWNER_LOCK, owner.pk])


def job_publish_soon(*, job_id: UUID, backend: str) -> bool:
    """Publish on one of the API process's background threads, so the request neither
    waits on the broker nor holds its database connection meanwhile. False when too many
    publishes already wait: the job stays PENDING and the relay sends it."""
    return background.run_soon(
        lambda: job_publish(job_id=job_id, backend=backend), name=f"publish of job {job_id}"
    )


def job_publish(*, job_id: UUID, backend: str) -> bool:
    """Send the job to its broker. A failure leaves it PENDING for the relay to retry.
    The backend orders publish and mark (Backend.hand_over): a broker publishes, then the
    row is marked QUEUED; a table queue marks the row QUEUED, then sends NOTIFY."""
    impl = backend_get(backend)
    started_at = timezone.now()

    def mark_queued() -> None:
        job_mark_queued(job_id=job_id, at=started_at)

    try:
        impl.hand_over(job_id, mark_queued=mark_queued)
    except Exception as exc:  # broker down, DNS, auth: the relay republishes later
        log.warning("publish of job %s to %s failed, left PENDING: %s", job_id, backend, exc)
        # A retry or requeue is already QUEUED: without a message it goes back to the relay.
        OcrJob.objects.filter(id=job_id, status=JobStatus.QUEUED).update(status=JobStatus.PENDING)
        return False
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
    """Take a ready job: RUNNING, attempt + 1, lease. None if it is not claimable
    (unknown, finished, CANCELLED, running elsewhere, or waiting out its backoff)."""
    job = OcrJob.objects.select_for_update().filter(_due(), id=job_id, status__in=READY).first()
    return None if job is None else _take(job, worker)


@transaction.atomic
def job_claim_next(*, backend: str, worker: str) -> OcrJob | None:
    """The `db` queue: the oldest ready job of `backend`, skipping rows others are taking."""
    job = (
        OcrJob.objects.select_for_update(skip_locked=True)
        .filter(_due(), backend=backend, status__in=READY)
        .order_by("created_at")
        .first()
    )
    return None if job is None else _take(job, worker)


def _take(job: OcrJob, worker: str) -> OcrJob | None:
    if job.attempts >= job.max_attempts:
        last = f" (last: {job.error})" if job.error else ""
        _finish(job, JobStatus.FAILED, error=f"no attempts left{last}", code=ErrorCode.NO_ATTEMPTS)
        return None
    OcrJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        claim_token=uuid.uuid4(),
        worker=worker,
        started_at=Now(),
        queued_at=Coalesce(F("queued_at"), Now()),
        lease_expires_at=_lease(settings.JOB_LEASE_S),
        run_after=None,
    )
    job.refresh_from_db(fields=[*CLAIM_FIELDS])
    return job


CLAIM_FIELDS = (
    "status",
    "attempts",
    "claim_token",
    "worker",
    "started_at",
    "queued_at",
    "lease_expires_at",
)


def job_start_sync(
    *, version: str, document: str, language: str = "eng", run_tag: str = "", owner=None
) -> OcrJob:
    """Record a V0-V2 call: it runs at once, so it is born RUNNING."""
    now = timezone.now()
    return OcrJob.objects.create(
        owner=owner,
        version=version,
        backend=HTTP_BACKEND,
        document=document,
        language=language,
        run_tag=run_tag,
        status=JobStatus.RUNNING,
        attempts=1,
        max_attempts=1,
        claim_token=uuid.uuid4(),
        worker="",
        queued_at=now,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=settings.OCR_HTTP_TIMEOUT_S + SYNC_LEASE_MARGIN_S),
    )


def job_heartbeat(*, job_id: UUID, claim: UUID) -> bool:
    """Extend the lease (database clock). False when the claim is no longer held:
    reclaimed after its lease ran out, or CANCELLED by an operator (and maybe retried)."""
    return _running(job_id, claim).update(lease_expires_at=_lease(settings.JOB_LEASE_S)) == 1


def job_succeed(*, job_id: UUID, claim: UUID, result: JobResult, worker: str = "") -> None:
    updated = _running(job_id, claim).update(
        status=JobStatus.DONE,
        finished_at=timezone.now(),
        lease_expires_at=None,
        result_text=result.text,
        result_pages=result.pages,
        result_pdf=result.pdf,
        timings=result.timings,
        error="",
        error_code="",
        **({"worker": worker} if worker else {}),
    )
    if updated != 1:
        raise StaleClaim(f"job {job_id} claim {claim} is no longer held; result dropped")
    _notify_finished(job_id)


def job_fail(*, job_id: UUID, claim: UUID, error: str, code: str = "", retry: bool = True) -> bool:
    """Store the error and its `code`. Returns True when the retry policy (apps/jobs/retry)
    put the job back (PENDING, `run_after` = now + backoff; the relay sends it when due);
    `retry=False` fails it at once."""
    code = code or ErrorCode.OCR_FAILED
    with transaction.atomic():
        job = _running(job_id, claim).select_for_update().first()
        if job is None:
            raise StaleClaim(f"job {job_id} claim {claim} is no longer held; error dropped")
        if retry and retry_allowed(job, code):
            OcrJob.objects.filter(pk=job.pk).update(
                status=JobStatus.PENDING,
                error=error,
                error_code=code,
                lease_expires_at=None,
                run_after=Now() + retry_policy.backoff(job.attempts),
            )
            return True
        _finish(job, JobStatus.FAILED, error=error, code=code)
        return False


def retry_allowed(job: OcrJob, code: str) -> bool:
    return retry_policy.should_retry(
        code=code,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        previous_code=job.error_code,
    )


def _finish(job: OcrJob, status: str, *, error: str = "", code: str = "") -> None:
    job.status, job.error, job.error_code = status, error, code
    job.finished_at, job.lease_expires_at = timezone.now(), None
    job.save(update_fields=["status", "error", "error_code", "finished_at", "lease_expires_at"])
    _notify_finished(job.id)


def finished_channel() -> str:
    """The NOTIFY channel on which `?wait=` requests (apps/jobs/waiting.py) listen."""
    return f"{settings.QUEUE_PREFIX}_finished"


def _notify_finished(job_id: UUID) -> None:
    """Wake the job's waiters; PostgreSQL delivers it when this transaction commits.
    Every change to DONE, FAILED or CANCELLED calls it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [finished_channel(), str(job_id)])


def _running(job_id: UUID, claim: UUID):
    return OcrJob.objects.filter(id=job_id, status=JobStatus.RUNNING, claim_token=claim)


def jobs_requeue_expired(*, backend: str) -> list[UUID]:
    """RUNNING jobs whose lease ran out (their worker died): back to PENDING, to be sent."""
    with transaction.atomic():
        ids = list(
            OcrJob.objects.select_for_update(skip_locked=True)
            .filter(backend=backend, status=JobStatus.RUNNING, lease_expires_at__lt=Now())
            .values_list("id", flat=True)
        )
        OcrJob.objects.filter(id__in=ids).update(
            status=JobStatus.PENDING,
            lease_expires_at=None,
            error=Value("lease expired: worker lost, job requeued"),
            error_code=ErrorCode.LEASE_LOST,
        )
    return ids


def jobs_fail_expired_sync() -> int:
    """V0-V2 calls whose lease ran out (the API process died mid-call): FAILED."""
    return OcrJob.objects.filter(
        backend=HTTP_BACKEND, status=JobStatus.RUNNING, lease_expires_at__lt=Now()
    ).update(
        status=JobStatus.FAILED,
        finished_at=Now(),
        lease_expires_at=None,
        error="the sync call was lost (API process gone); no result",
        error_code=ErrorCode.LEASE_LOST,
    )


def jobs_relay(*, backend: str) -> dict[str, int]:
    """The outbox relay: republish jobs that have no message in flight for sure: stale
    PENDING ones (publish failed, or a retry whose backoff is over), lease-expired ones
    (worker died) and, for brokers, QUEUED ones whose message is long overdue (lost before
    any claim). Duplicates are harmless: a claim skips a job that is not ready. Also fails
    sync (V0-V2) calls whose lease ran out."""
    now = timezone.now()
    sync_failed = jobs_fail_expired_sync()
    expired = jobs_requeue_expired(backend=backend)
    ready = OcrJob.objects.filter(backend=backend)
    stale = ready.filter(
        _due(),
        status=JobStatus.PENDING,
        created_at__lt=now - timedelta(seconds=settings.RELAY_PENDING_GRACE_S),
    )
    if not backend_get(backend).row_is_message:
        stale = stale | _queued_overdue(ready, now)
    stale_ids = list(stale.values_list("id", flat=True)[:1000])
    published = 0
    for job_id in dict.fromkeys(expired + stale_ids):  # an expired job is PENDING too
        if not job_publish(job_id=job_id, backend=backend):
            break  # broker down: one timeout per pass; the rest stay PENDING for the next
        published += 1
    return {
        "expired": len(expired),
        "stale": len(stale_ids),
        "published": published,
        "sync_failed": sync_failed,
    }


def _queued_overdue(jobs, now):
    """QUEUED jobs whose message looks lost: unclaimed for RELAY_QUEUED_STALE_S while no
    job runs, or while a job published later already runs. A backlog that busy workers
    have not reached yet (every running job was published before) is left alone:
    resending it would only stack duplicates behind it."""
    cutoff = now - timedelta(seconds=settings.RELAY_QUEUED_STALE_S)
    latest = jobs.filter(status=JobStatus.RUNNING).aggregate(at=Max("published_at"))["at"]
    if latest is not None:
        cutoff = min(cutoff, latest)
    return jobs.filter(status=JobStatus.QUEUED, published_at__lt=cutoff)


def jobs_delete(*, q: Q | None = None) -> int:
    return OcrJob.objects.filter(q or Q()).delete()[0]


# --- operator actions (admin): cancel, retry, requeue ------------------------------------
# Each is one conditional UPDATE on the job's current status, so an action that lost a race
# with a worker (the job finished meanwhile) changes nothing and returns False.

CANCELLABLE = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING)
RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)


def job_cancel(*, job_id: UUID) -> bool:
    """Stop a job that has not finished: CANCELLED. A waiting job is never claimed (claims
    take only PENDING/QUEUED rows); a running one loses its lease, so its worker's next
    heartbeat and its result update match no row."""
    cancelled = (
        OcrJob.objects.filter(id=job_id, status__in=CANCELLABLE).update(
            status=JobStatus.CANCELLED,
            finished_at=timezone.now(),
            lease_expires_at=None,
            error="cancelled by an operator",
            error_code="cancelled",
        )
        == 1
    )
    if cancelled:
        _notify_finished(job_id)
    return cancelled


def job_cancel_tagged(*, tag_regex: str) -> int:
    """Cancel every unfinished job whose run tag matches `tag_regex` (as job_cancel does);
    how many. The bench retires what an earlier cell or an interrupted run left."""
    ids = list(
        OcrJob.objects.filter(run_tag__regex=tag_regex, status__in=CANCELLABLE).values_list(
            "id", flat=True
        )
    )
    return sum(job_cancel(job_id=job_id) for job_id in ids)


def job_retry(*, job_id: UUID) -> bool:
    """Run a FAILED (or CANCELLED) job again from scratch: QUEUED with its attempts reset,
    published after commit."""
    with transaction.atomic():
        job = OcrJob.objects.filter(id=job_id, status__in=RETRYABLE).only("backend").first()
        updated = OcrJob.objects.filter(id=job_id, status__in=RETRYABLE).update(
            status=JobStatus.QUEUED,
            attempts=0,
            error="",
            error_code="",
            run_after=None,
            worker="",
            started_at=None,
            finished_at=None,
            lease_expires_at=None,
        )
        if updated != 1 or job is None:
            return False
        transaction.on_commit(lambda: job_publish(job_id=job_id, backend=job.backend))
    return True


def job_requeue(*, job_id: UUID) -> bool:
    """Send a stuck PENDING or QUEUED job's message again (a duplicate costs one skipped
    claim). False when the job is not waiting or the broker did not take the message."""
    job = OcrJob.objects.filter(id=job_id, status__in=READY).only("backend").first()
    return job is not None and job_publish(job_id=job_id, backend=job.backend)


PURGE_BATCH = 500


@dataclass(frozen=True)
class PurgeResult:
    jobs: int = 0
    files: int = 0


def jobs_purge(*, older_than: timedelta) -> PurgeResult:
    """Delete finished jobs created more than `older_than` ago with their upload and PDF
    (files only under MEDIA_ROOT; a file already gone is fine). Batches keep memory flat."""
    cutoff = timezone.now() - older_than
    old = OcrJob.objects.filter(status__in=FINISHED, created_at__lt=cutoff)
    jobs = files = 0
    while batch := list(old.values_list("id", "upload", "result_pdf")[:PURGE_BATCH]):
        with transaction.atomic():
            jobs += OcrJob.objects.filter(id__in=[row[0] for row in batch]).delete()[0]
        files += sum(_unlink(name) for _, *names in batch for name in names)
    return PurgeResult(jobs=jobs, files=files)


def result_file_delete(*, name: str) -> bool:
    """Delete a result file that no job keeps (a discarded run's PDF); False if none."""
    return _unlink(name)


def _unlink(name: str) -> bool:
    path = media_path(name)
    if path is None or not path.is_file():
        return False
    path.unlink(missing_ok=True)
    return True
