"""The worker core on the in-memory backend: process_job with its child process, limits,
retries, backoff, leases and poison handling, without any broker (seconds, not minutes)."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.db.models.functions import Now
from django.utils import timezone

from apps.jobs import retry, services
from apps.jobs.models import JobStatus, OcrJob
from apps.jobs.retry import ErrorCode
from tasks import process
from tasks.backends.base import Message
from tasks.backends.registry import get_backend
from tasks.consume import consume_loop, handle_message
from tasks.limits import Lease, LeaseLost
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db
ALIAS = "memory"


@pytest.fixture
def memory():
    backend = get_backend(ALIAS)
    backend.purge()
    yield backend
    backend.purge()


def new_job(workload: str = "noop", **kwargs) -> OcrJob:
    return services.job_create(
        version="api",
        backend=ALIAS,
        document="sample.pdf",
        workload=workload,
        publish=False,
        **kwargs,
    )


def reload(job: OcrJob) -> OcrJob:
    return OcrJob.objects.get(id=job.id)


def drain(backend) -> list[str]:
    """Run the generic consume loop until the queue is empty; return the outcomes."""
    outcomes: list[str] = []
    stop = threading.Event()

    def handle(message: Message) -> str:
        outcomes.append(handle_message(message.job_id, worker="test", claimed=message.claimed))
        if backend.pending() == 0:
            stop.set()
        return outcomes[-1]

    consume_loop(backend.open_consumer("test"), handle, stop=stop)
    return outcomes


def test_noop_job_through_publish_consume_ack_ends_done(memory):
    job = new_job()
    assert services.job_publish(job_id=job.id, backend=ALIAS)
    assert drain(memory) == ["done"]
    job = reload(job)
    assert (job.status, job.attempts, job.error_code) == (JobStatus.DONE, 1, "")


def test_failure_backs_off_and_the_relay_sends_it_only_when_due(memory, settings):
    settings.RELAY_PENDING_GRACE_S = 0
    settings.JOB_RETRY_BASE_S = settings.JOB_RETRY_MAX_S = 60
    job = new_job("fail")
    assert process.process_job(job.id) == "retry"
    job = reload(job)
    assert job.status == JobStatus.PENDING and job.error_code == ErrorCode.WORKLOAD
    assert job.run_after > timezone.now() + timedelta(seconds=25)  # 60 s, jittered to >= 30
    assert services.jobs_relay(backend=ALIAS)["published"] == 0  # not before run_after
    assert process.process_job(job.id) == "skipped"  # an early message is not claimed
    OcrJob.objects.filter(id=job.id).update(run_after=Now())  # backoff over
    assert services.jobs_relay(backend=ALIAS)["published"] == 1
    assert drain(memory) == ["failed"]  # JOB_MAX_ATTEMPTS=2 in tests
    job = reload(job)
    assert (job.status, job.attempts, job.error_code) == (JobStatus.FAILED, 2, "workload_failed")


def test_db_claim_honours_run_after():
    job = new_job()
    OcrJob.objects.filter(id=job.id).update(run_after=timezone.now() + timedelta(minutes=1))
    assert services.job_claim_next(backend=ALIAS, worker="w") is None
    OcrJob.objects.filter(id=job.id).update(run_after=timezone.now() - timedelta(seconds=1))
    assert services.job_claim_next(backend=ALIAS, worker="w").id == job.id


def test_a_hang_in_c_code_is_killed_at_the_hard_limit_and_retried_once(settings):
    settings.JOB_TIME_LIMIT_S = 1
    job = new_job("hang:60")  # libc sleep(3): no Python signal handler could stop it
    assert process.process_job(job.id) == "retry"
    assert reload(job).error_code == ErrorCode.TIMEOUT
    OcrJob.objects.filter(id=job.id).update(run_after=None)
    settings.JOB_MAX_ATTEMPTS = 3
    OcrJob.objects.filter(id=job.id).update(max_attempts=3)
    assert process.process_job(job.id) == "failed"  # a second timeout is final
    job = reload(job)
    assert (job.status, job.error_code, job.attempts) == (JobStatus.FAILED, "timeout", 2)
    assert "hard time limit" in job.error


def test_an_allocation_bomb_is_a_clean_memory_failure(settings):
    settings.JOB_MEMORY_LIMIT_MB = 200
    job = new_job("alloc:2000")
    assert process.process_job(job.id) == "failed"  # never retried
    job = reload(job)
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.MEMORY)
    assert process.process_job(new_job().id) == "done"  # the worker is fine


def test_permanent_and_transient_codes():
    kw = {"attempts": 1, "max_attempts": 3}
    assert not retry.should_retry(code="bad_input", **kw)
    assert not retry.should_retry(code="memory", **kw)
    assert retry.should_retry(code="ocr_failed", **kw)
    assert retry.should_retry(code="timeout", **kw)
    assert not retry.should_retry(code="timeout", previous_code="timeout", **kw)
    assert not retry.should_retry(code="ocr_failed", attempts=3, max_attempts=3)


def test_backoff_grows_exponentially_with_jitter_and_a_cap(settings):
    settings.JOB_RETRY_BASE_S, settings.JOB_RETRY_MAX_S = 1, 10
    for attempt, cap in [(1, 1), (2, 2), (3, 4), (6, 10)]:
        delays = {retry.backoff_s(attempt) for _ in range(20)}
        assert all(cap / 2 <= d <= cap for d in delays) and len(delays) > 1


def test_a_cancelled_job_is_never_claimed():
    job = new_job()
    OcrJob.objects.filter(id=job.id).update(status=JobStatus.CANCELLED, finished_at=timezone.now())
    assert process.process_job(job.id) == "skipped"
    assert reload(job).attempts == 0


def test_no_attempts_left_is_a_terminal_failure_with_its_code():
    job = new_job()
    OcrJob.objects.filter(id=job.id).update(attempts=2, max_attempts=2, error="boom")
    assert process.process_job(job.id) == "skipped"
    job = reload(job)
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.NO_ATTEMPTS)


def test_poison_and_orphan_messages_are_acked_and_counted(memory):
    before = dict(process.OUTCOMES)
    memory.publish_raw("not-a-uuid")
    memory.publish_raw(b"\xff\xfe garbage")
    memory.publish_raw("")
    memory.publish_raw("00000000-0000-0000-0000-000000000000")
    job = new_job()
    memory.publish(job.id)
    assert drain(memory) == ["poison", "poison", "poison", "orphan", "done"]
    assert memory.pending() == 0
    assert process.OUTCOMES["poison"] == before.get("poison", 0) + 3
    assert process.OUTCOMES["orphan"] == before.get("orphan", 0) + 1


def test_a_stale_claim_does_not_store(settings):
    job = new_job()
    old = services.job_claim(job_id=job.id, worker="a")
    OcrJob.objects.filter(id=job.id).update(lease_expires_at=timezone.now() - timedelta(1))
    services.jobs_requeue_expired(backend=ALIAS)
    assert services.job_claim(job_id=job.id, worker="b").attempts == 2
    assert process.process_job(job.id, claimed=old) == "stale"
    assert reload(job).status == JobStatus.RUNNING  # b's attempt is untouched


def test_heartbeat_survives_transient_database_errors(monkeypatch):
    job = new_job()
    claimed = services.job_claim(job_id=job.id, worker="w")
    lease = Lease(job.id, claimed.claim_token, lease_s=0.03)
    real, calls = services.job_heartbeat, []

    def flaky(**kw):
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kw)

    monkeypatch.setattr(services, "job_heartbeat", flaky)
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        lease.tick()
        time.sleep(0.01)
    assert len(calls) == 3 and lease.failures == 0


def test_a_lost_lease_raises_on_the_next_heartbeat():
    job = new_job()
    claimed = services.job_claim(job_id=job.id, worker="w")
    OcrJob.objects.filter(id=job.id).update(status=JobStatus.PENDING, lease_expires_at=None)
    lease = Lease(job.id, claimed.claim_token, lease_s=0.0)
    with pytest.raises(LeaseLost):
        lease.tick()


def test_expired_sync_calls_are_failed_by_the_relay():
    job = services.job_start_sync(version="v1", document="sample.pdf")
    assert services.jobs_relay(backend=ALIAS)["sync_failed"] == 0
    OcrJob.objects.filter(id=job.id).update(lease_expires_at=timezone.now() - timedelta(1))
    assert services.jobs_relay(backend=ALIAS)["sync_failed"] == 1
    job = reload(job)
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.LEASE_LOST)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["cancelled", "reclaimed"])
def test_a_running_job_whose_lease_is_lost_is_killed_and_abandoned(settings, how):
    settings.JOB_LEASE_S = 0.6  # heartbeat every 0.2 s
    job = new_job("hang:60")
    outcome: list[str] = []

    def work() -> None:
        try:
            outcome.append(process.process_job(job.id))
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    wait_for(lambda: reload(job).status == JobStatus.RUNNING, 30, message="job running")
    if how == "cancelled":
        OcrJob.objects.filter(id=job.id).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(), lease_expires_at=None
        )
    else:
        OcrJob.objects.filter(id=job.id).update(lease_expires_at=timezone.now() - timedelta(1))
        services.jobs_requeue_expired(backend=ALIAS)
    thread.join(30)
    assert outcome == ["abandoned"]
    expected = JobStatus.CANCELLED if how == "cancelled" else JobStatus.PENDING
    assert reload(job).status == expected  # nothing stored by the lost attempt


@pytest.mark.django_db(transaction=True)
def test_the_final_write_is_retried_across_database_errors(monkeypatch):
    monkeypatch.setattr(process, "STORE_RETRY_FIRST_S", 0.01)
    job = new_job()
    real, calls = services.job_succeed, []

    def flaky(**kw):
        calls.append(1)
        if len(calls) <= 3:
            raise OperationalError("the database system is starting up")
        return real(**kw)

    monkeypatch.setattr(services, "job_succeed", flaky)
    assert process.process_job(job.id) == "done"
    assert len(calls) == 4 and reload(job).status == JobStatus.DONE
