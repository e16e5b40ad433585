"""`process_job(job_id)`: the one task body behind every backend.

Claim (guarded) -> run the workload under a lease heartbeat and a wall-clock limit ->
store DONE or FAILED (or put it back for a retry). A message whose job is not claimable
(finished, or running elsewhere under a live lease) is skipped, so the adapter acks it and
a redelivery never doubles a result.
"""

import logging
import signal
import threading
import time
from contextlib import contextmanager
from uuid import UUID

from django.conf import settings
from django.db import close_old_connections, connection

from apps.jobs import services
from tasks.workloads import WorkloadError, effective_workload, run_workload

log = logging.getLogger("tasks.process")


class JobTimeout(Exception):
    pass


# Framework time limits that are BaseExceptions (Dramatiq's TimeLimitExceeded): adapters
# register theirs, so a limit hit is stored like any failure (retried or FAILED).
INTERRUPTS: list[type[BaseException]] = []


def process_job(job_id: UUID | str, *, worker: str | None = None, claimed=None) -> str:
    """Run one job to its end; returns what happened: done, failed, retry, skipped, stale.

    `claimed` is a job the caller already claimed (the `db` backend claims and picks in
    one statement); every other backend passes only the id from its message.
    """
    close_old_connections()
    job_id = UUID(str(job_id))
    worker = worker or services.worker_name()
    job = claimed or services.job_claim(job_id=job_id, worker=worker)
    if job is None:
        log.info("job %s skipped: not claimable (finished or held elsewhere)", job_id)
        return "skipped"
    started = time.monotonic()
    outcome = _run(job, worker)
    log.info(
        "job %s %s backend=%s workload=%s attempt=%d %.3fs worker=%s",
        job_id,
        outcome,
        job.backend,
        effective_workload(job),
        job.attempts,
        time.monotonic() - started,
        worker,
    )
    return outcome


def _run(job, worker: str) -> str:
    try:
        with heartbeat(job.id, job.attempts), time_limit(settings.JOB_TIME_LIMIT_S):
            result = run_workload(job)
    except Exception as exc:  # every failure is stored on the job, never lost
        return _fail(job, exc)
    except BaseException as exc:
        if not isinstance(exc, tuple(INTERRUPTS)):
            raise
        limit = JobTimeout(f"job exceeded the worker's time limit ({type(exc).__name__})")
        return _fail(job, limit)
    try:
        services.job_succeed(job_id=job.id, attempt=job.attempts, result=result)
    except services.StaleClaim as exc:
        log.warning("%s", exc)
        return "stale"
    return "done"


def _fail(job, exc: Exception) -> str:
    error = f"{type(exc).__name__}: {exc}"
    permanent = isinstance(exc, WorkloadError) and exc.permanent
    try:
        retry = services.job_fail(
            job_id=job.id, attempt=job.attempts, error=error, retry=not permanent
        )
    except services.StaleClaim as stale:
        log.warning("%s", stale)
        return "stale"
    if retry:
        services.job_publish(job_id=job.id, backend=job.backend)
        return "retry"
    return "failed"


@contextmanager
def heartbeat(job_id: UUID, attempt: int):
    """Extend the job's lease every third of it while the workload runs."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.JOB_LEASE_S / 3):
                services.job_heartbeat(job_id=job_id, attempt=attempt)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def time_limit(seconds: float):
    """Raise JobTimeout in the main thread after `seconds` (no-op in other threads, where
    the framework's own limit applies, e.g. Dramatiq's time_limit)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def expire(signum, frame):
        raise JobTimeout(f"job exceeded its time limit of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
