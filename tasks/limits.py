"""Hard limits and the lease, enforced by the worker while its child runs the workload.

`run_limited(job, lease=...)` hands the job to this thread's child process
(tasks/child.py) and waits for its answer, ticking the lease meanwhile. Past the hard
time limit the child is killed (even inside Tesseract, Ghostscript or pikepdf) and the
attempt is a `timeout`; when the lease is lost (the heartbeat matched no row: the job was
reclaimed, or CANCELLED) the child is killed and `LeaseLost` is raised, so nothing is
stored. One thread does both, so this works the same under Dramatiq's worker threads and
Celery's prefork pool, with no signal handler.
"""

import logging
import time
from uuid import UUID

from django.db import DatabaseError, connection

from apps.jobs import services
from apps.jobs.retry import ErrorCode
from tasks import child as children
from tasks.child import START_TIMEOUT_S, ChildGone, WorkReply, WorkRequest

log = logging.getLogger("tasks.limits")
TICK_S = 0.5  # at most this between checks of the time limit
HEARTBEAT_RETRY_S = 0.5  # first retry after a failed heartbeat; doubles, capped below


class LeaseLost(Exception):
    """The job is no longer ours (reclaimed or cancelled): abandon it, store nothing."""


class Lease:
    """Extends the job's lease every third of JOB_LEASE_S; survives database errors."""

    def __init__(self, job_id: UUID, claim: UUID, lease_s: float, *, renew: bool = True):
        self.job_id, self.claim, self.renew = job_id, claim, renew
        self.every_s = lease_s / 3
        self.next_at = time.monotonic() + self.every_s
        self.failures = 0

    def seconds_left(self) -> float:
        return max(0.0, self.next_at - time.monotonic())

    def tick(self) -> None:
        """Heartbeat if due. Raises LeaseLost when the database says the job is not ours."""
        if time.monotonic() < self.next_at:
            return
        if not self.renew:  # JOB_LEASE_RENEWAL off: the lease runs out mid-job
            self.next_at = time.monotonic() + self.every_s
            return
        try:
            held = services.job_heartbeat(job_id=self.job_id, claim=self.claim)
        except DatabaseError as exc:
            self.failures += 1
            delay_s = min(HEARTBEAT_RETRY_S * 2 ** (self.failures - 1), self.every_s)
            log.warning(
                "heartbeat of job %s failed (%d in a row), retrying in %.1fs: %s",
                self.job_id,
                self.failures,
                delay_s,
                exc,
            )
            drop_connection()
            self.next_at = time.monotonic() + delay_s
            return
        if not held:
            raise LeaseLost(f"job {self.job_id} claim {self.claim} is no longer held")
        self.failures, self.next_at = 0, time.monotonic() + self.every_s


def drop_connection() -> None:
    """Forget a broken connection so the next query reconnects (not inside a test's
    transaction, which must keep its connection)."""
    if not connection.in_atomic_block:
        try:
            connection.close()
        except DatabaseError:
            connection.connection = None


def run_limited(request: WorkRequest, *, lease: Lease, time_limit_s: float) -> WorkReply:
    """Run `request` in this thread's child within `time_limit_s`; kill it on a limit."""
    child = children.current()
    try:
        if not child.started:
            child.start()
        if not child.ready:
            _wait_ready(child, lease)
        child.send(request)
        deadline = time.monotonic() + time_limit_s if time_limit_s > 0 else float("inf")
        while True:
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                child.kill()
                return WorkReply(
                    ok=False,
                    error=f"job exceeded its hard time limit of {time_limit_s:g}s; killed",
                    code=ErrorCode.TIMEOUT,
                )
            reply = child.poll(min(TICK_S, left_s, lease.seconds_left()))
            if reply is not None:
                if reply.code == ErrorCode.MEMORY:
                    child.kill()
                return reply
            lease.tick()
    except ChildGone as exc:
        child.kill()
        return WorkReply(ok=False, error=str(exc), code=ErrorCode.CRASHED)
    except BaseException:  # lease lost, a framework's own time limit, shutdown
        child.kill()
        raise


def _wait_ready(child: children.WorkloadProcess, lease: Lease) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll(min(TICK_S, lease.seconds_left())) == children.READY:
            child.ready = True
            return
        lease.tick()
    raise ChildGone(f"workload process not ready after {START_TIMEOUT_S:g}s")


def prestart() -> None:
    """Start this thread's child now (a worker calls it before its first job)."""
    child = children.current()
    if not child.started:
        child.start()
