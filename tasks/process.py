"""`process_job(job_id)`: the one task body behind every backend.

Claim (guarded) -> run the workload in a child process under a hard time limit, a memory
limit and a lease heartbeat (tasks/limits.py) -> store DONE, or FAILED / a retry as the
retry policy says (apps/jobs/retry.py). A message whose job is not claimable (finished,
cancelled, or running elsewhere under a live lease) is skipped, so the adapter acks it
and a redelivery never doubles a result. A lost lease abandons the job without storing.
The final write survives a short database restart (retried with backoff).
"""

import logging
import time
from collections import Counter
from collections.abc import Callable
from uuid import UUID

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from apps.jobs import services
from apps.jobs.models import OcrJob
from apps.jobs.retry import ErrorCode
from apps.jobs.workloads import effective_workload
from tasks import scratch
from tasks.child import WorkReply, WorkRequest
from tasks.limits import Lease, LeaseLost, drop_connection, run_limited

log = logging.getLogger("tasks.process")
STORE_RETRY_S = 30.0  # keep retrying the final write this long (a PostgreSQL restart)
STORE_RETRY_FIRST_S = 0.25
STORE_RETRY_MAX_S = 5.0

# Framework time limits that are BaseExceptions (Dramatiq's TimeLimitExceeded): adapters
# register theirs, so a limit hit is stored as a timeout (the child is killed first).
INTERRUPTS: list[type[BaseException]] = []
# What process_job saw, per outcome, in this process (poison/orphan counts for logs).
OUTCOMES: Counter[str] = Counter()


def process_job(job_id: UUID | str, *, worker: str | None = None, claimed=None) -> str:
    """Run one job to its end; returns what happened: done, failed, retry, skipped,
    stale, abandoned (lease lost) or orphan (no such job).

    `claimed` is a job the caller already claimed (the `db` backend claims and picks in
    one statement); every other backend passes only the id from its message.
    """
    if not connection.in_atomic_block:  # (tests run inside one transaction)
        close_old_connections()
    job_id = UUID(str(job_id))
    worker = worker or services.worker_name()
    job = claimed or services.job_claim(job_id=job_id, worker=worker)
    if job is None:
        outcome = "skipped" if OcrJob.objects.filter(id=job_id).exists() else "orphan"
        log.log(
            logging.INFO if outcome == "skipped" else logging.WARNING,
            "job %s %s: %s",
            job_id,
            outcome,
            "not claimable (finished, cancelled, backing off or held elsewhere)"
            if outcome == "skipped"
            else "no such job; message dropped",
        )
        OUTCOMES[outcome] += 1
        return outcome
    started = time.monotonic()
    log.info("job %s started attempt=%d worker=%s", job_id, job.attempts, worker)
    outcome = _run(job, worker)
    OUTCOMES[outcome] += 1
    log.info(
        "job %s %s backend=%s workload=%s attempt=%d %.3fs worker=%s",
        job_id,
        outcome,
        job.backend,
        effective_workload(job.workload),
        job.attempts,
        time.monotonic() - started,
        worker,
    )
    return outcome


def _request(job: OcrJob, tmp_dir: str) -> WorkRequest:
    return WorkRequest(
        job_id=str(job.id),
        workload=effective_workload(job.workload),
        document=job.document,
        upload=job.upload.name or "",  # (a FieldFile is falsy when its name is)
        language=job.language,
        memory_limit_mb=settings.JOB_MEMORY_LIMIT_MB,
        tmp_dir=tmp_dir,
    )


def _run(job: OcrJob, worker: str) -> str:
    claim = job.claim_token
    assert claim is not None  # set by every claim
    lease = Lease(job.id, claim, settings.JOB_LEASE_S, renew=settings.JOB_LEASE_RENEWAL)
    try:
        with scratch.job_dir(job.id) as tmp_dir:  # removed once the child answered or died
            request = _request(job, str(tmp_dir))
            reply = run_limited(request, lease=lease, time_limit_s=settings.JOB_TIME_LIMIT_S)
    except LeaseLost as exc:
        log.warning("%s: workload killed, job abandoned without storing", exc)
        return "abandoned"
    except BaseException as exc:
        if not isinstance(exc, (Exception, *INTERRUPTS)):
            raise  # KeyboardInterrupt, SystemExit: the child is dead already
        reply = WorkReply(
            ok=False,
            error=f"job stopped by the worker's time limit ({type(exc).__name__})",
            code=ErrorCode.TIMEOUT if _is_time_limit(exc) else ErrorCode.CRASHED,
        )
    if not reply.ok:
        return _fail(job, claim, reply)
    result = reply.result
    assert result is not None  # a JobResult when ok
    try:
        _durably(lambda: services.job_succeed(job_id=job.id, claim=claim, result=result))
    except services.StaleClaim as exc:
        log.warning("%s", exc)
        services.result_file_delete(name=result.pdf)  # nobody will ever point to it
        return "stale"
    return "done"


def _is_time_limit(exc: BaseException) -> bool:
    return isinstance(exc, tuple(INTERRUPTS)) or "TimeLimit" in type(exc).__name__


def _fail(job: OcrJob, claim: UUID, reply: WorkReply) -> str:
    try:
        retry = _durably(
            lambda: services.job_fail(
                job_id=job.id,
                claim=claim,
                error=reply.error,
                code=reply.code,
                retry=not reply.permanent,
            )
        )
    except services.StaleClaim as stale:
        log.warning("%s", stale)
        return "stale"
    return "retry" if retry else "failed"


def _durably(write: Callable[[], object]):
    """Run a guarded write, retrying database errors with backoff for STORE_RETRY_S.
    StaleClaim (the guard said no) is never retried."""
    deadline = time.monotonic() + STORE_RETRY_S
    delay_s = STORE_RETRY_FIRST_S
    while True:
        try:
            return write()
        except DatabaseError as exc:
            if time.monotonic() + delay_s > deadline or connection.in_atomic_block:
                raise
            log.warning("storing a job failed (%s); retrying in %.2fs", exc, delay_s)
            drop_connection()
            time.sleep(delay_s)
            delay_s = min(2 * delay_s, STORE_RETRY_MAX_S)
