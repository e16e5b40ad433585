"""The guarded state machine: no job finishes twice, none is lost."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from tasks.backends.registry import get_backend

pytestmark = pytest.mark.django_db


def new_job(**kwargs) -> OcrJob:
    return services.job_create(
        version="v3", backend="db", document="sample.pdf", publish=False, **kwargs
    )


def test_claim_sets_running_attempt_lease_and_worker():
    job = services.job_claim(job_id=new_job().id, worker="w1")
    assert (job.status, job.attempts, job.worker) == (JobStatus.RUNNING, 1, "w1")
    assert job.lease_expires_at > timezone.now() and job.started_at and job.queued_at


def test_a_running_or_finished_job_is_not_claimed_again():
    job = new_job()
    claimed = services.job_claim(job_id=job.id, worker="w1")
    assert services.job_claim(job_id=job.id, worker="w2") is None
    services.job_succeed(
        job_id=job.id, claim=claimed.claim_token, result=services.JobResult(text="hi")
    )
    assert services.job_claim(job_id=job.id, worker="w2") is None
    assert OcrJob.objects.get(id=job.id).worker == "w1"


def test_a_stale_attempt_cannot_finish_the_job():
    job = new_job()
    old = services.job_claim(job_id=job.id, worker="w1")
    OcrJob.objects.filter(id=job.id).update(lease_expires_at=timezone.now() - timedelta(1))
    assert services.jobs_requeue_expired(backend="db") == [job.id]
    new = services.job_claim(job_id=job.id, worker="w2")
    with pytest.raises(services.StaleClaim):
        services.job_succeed(
            job_id=job.id, claim=old.claim_token, result=services.JobResult(text="old")
        )
    services.job_succeed(
        job_id=job.id, claim=new.claim_token, result=services.JobResult(text="new")
    )
    job.refresh_from_db()
    assert (job.status, job.result_text, job.worker) == (JobStatus.DONE, "new", "w2")


def test_failure_retries_until_attempts_run_out(settings):
    job = new_job()
    for attempt in range(1, job.max_attempts + 1):
        claim = services.job_claim(job_id=job.id, worker="w").claim_token
        retried = services.job_fail(job_id=job.id, claim=claim, error=f"boom {attempt}")
        assert retried == (attempt < job.max_attempts)
        OcrJob.objects.filter(id=job.id).update(run_after=None)  # skip the backoff
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, f"boom {job.max_attempts}")
    assert job.finished_at is not None


def test_permanent_failure_is_not_retried():
    job = new_job()
    claim = services.job_claim(job_id=job.id, worker="w").claim_token
    assert services.job_fail(job_id=job.id, claim=claim, error="bad pdf", retry=False) is False
    assert OcrJob.objects.get(id=job.id).status == JobStatus.FAILED


def test_mark_queued_after_a_fast_claim_keeps_running():
    job = new_job()
    services.job_claim(job_id=job.id, worker="w")
    services.job_mark_queued(job_id=job.id, at=timezone.now())
    assert OcrJob.objects.get(id=job.id).status == JobStatus.RUNNING


def test_database_refuses_a_running_job_without_lease():
    from django.db import IntegrityError

    job = new_job()
    with pytest.raises(IntegrityError):
        OcrJob.objects.filter(id=job.id).update(status=JobStatus.RUNNING)


@pytest.mark.django_db(transaction=True)
def test_db_publish_readies_the_row_before_it_wakes_a_worker(monkeypatch):
    """NOTIFY before the QUEUED update let a woken worker's SKIP LOCKED claim skip the
    still-locked row: the job then waited for the 1 s fallback poll."""
    backend = get_backend("db")
    seen: list[str] = []
    notify = type(backend).publish

    def spy(self, job_id):
        seen.append(OcrJob.objects.get(id=job_id).status)
        notify(self, job_id)

    monkeypatch.setattr(type(backend), "publish", spy)
    services.job_create(version="v3", backend="db", document="sample.pdf", workload="noop")
    assert seen == [JobStatus.QUEUED]
