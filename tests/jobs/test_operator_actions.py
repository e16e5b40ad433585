"""Operator actions: cancel, retry, requeue (services, then the admin actions)."""

import pytest
from django.utils import timezone

from apps.bench.run.session import BENCH_TAG_RE
from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from tasks.backends.registry import reset_backends

pytestmark = pytest.mark.django_db


def new_job(backend: str = "db", **fields) -> OcrJob:
    job = services.job_create(version="api", backend=backend, document="sample.pdf", publish=False)
    if fields:
        OcrJob.objects.filter(id=job.id).update(**fields)
    return OcrJob.objects.get(id=job.id)


def failed_job() -> OcrJob:
    job = new_job()
    claimed = services.job_claim(job_id=job.id, worker="w1")
    services.job_fail(job_id=job.id, claim=claimed.claim_token, error="boom", retry=False)
    return OcrJob.objects.get(id=job.id)


@pytest.mark.parametrize("status", ["PENDING", "QUEUED"])
def test_a_cancelled_waiting_job_is_never_claimed(status):
    job = new_job(status=status)
    assert services.job_cancel(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at and job.error_code == "cancelled"
    assert services.job_claim(job_id=job.id, worker="w1") is None
    assert services.job_claim_next(backend="db", worker="w1") is None
    services.job_mark_queued(job_id=job.id, at=timezone.now())  # a late publish
    assert OcrJob.objects.get(id=job.id).status == JobStatus.CANCELLED


def test_a_cancelled_running_job_loses_its_lease_and_result():
    job = new_job()
    claimed = services.job_claim(job_id=job.id, worker="w1")
    assert services.job_cancel(job_id=job.id)
    assert not services.job_heartbeat(job_id=job.id, claim=claimed.claim_token)
    with pytest.raises(services.StaleClaim):
        services.job_succeed(job_id=job.id, claim=claimed.claim_token, result=services.JobResult())
    assert OcrJob.objects.get(id=job.id).status == JobStatus.CANCELLED
    assert services.jobs_requeue_expired(backend="db") == []


def test_cancel_leaves_a_finished_job_alone():
    job = failed_job()
    assert not services.job_cancel(job_id=job.id)
    assert OcrJob.objects.get(id=job.id).status == JobStatus.FAILED


def test_cancel_tagged_retires_unfinished_jobs_of_matching_tags_only():
    left = [new_job(run_tag="b251205041440-c004-r01", status="QUEUED") for _ in range(2)]
    services.job_claim(job_id=left[1].id, worker="w1")  # one of them RUNNING, with a lease
    done = new_job(run_tag="b251205041440-c003-r01", status="DONE", finished_at=timezone.now())
    mine = new_job(run_tag="demo", status="QUEUED")
    assert services.job_cancel_tagged(tag_regex=BENCH_TAG_RE) == 2
    assert {OcrJob.objects.get(id=j.id).status for j in left} == {JobStatus.CANCELLED}
    assert OcrJob.objects.get(id=done.id).status == JobStatus.DONE
    assert OcrJob.objects.get(id=mine.id).status == JobStatus.QUEUED


def test_retry_puts_a_failed_job_back_with_attempts_reset(django_capture_on_commit_callbacks):
    job = failed_job()
    assert job.attempts == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert services.job_retry(job_id=job.id)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.finished_at, job.error) == (
        JobStatus.QUEUED,
        0,
        None,
        "",
    )
    assert job.published_at is not None
    assert services.job_claim(job_id=job.id, worker="w2").attempts == 1


def test_retry_refuses_a_job_that_has_not_failed():
    job = new_job(status=JobStatus.QUEUED)
    assert not services.job_retry(job_id=job.id)
    assert OcrJob.objects.get(id=job.id).status == JobStatus.QUEUED


def test_requeue_republishes_a_waiting_job_only():
    job = new_job(status=JobStatus.QUEUED)
    assert services.job_requeue(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.published_at is not None
    assert not services.job_requeue(job_id=failed_job().id)


def test_requeue_with_the_broker_down_leaves_the_job_for_the_relay(settings):
    settings.JOB_BACKENDS = {
        **settings.JOB_BACKENDS,
        "redis": {**settings.JOB_BACKENDS["redis"], "OPTIONS": {"url": "redis://127.0.0.1:1/0"}},
    }
    reset_backends()
    try:
        job = new_job(backend="redis", status=JobStatus.QUEUED)
        assert not services.job_requeue(job_id=job.id)
        assert OcrJob.objects.get(id=job.id).status == JobStatus.PENDING
    finally:
        reset_backends()


def run_action(admin_client, action: str, *jobs: OcrJob):
    ids = [str(job.id) for job in jobs]
    return admin_client.post(
        "/admin/jobs/ocrjob/", {"action": action, "_selected_action": ids}, follow=True
    )


def test_admin_actions_call_the_services_and_say_what_happened(
    admin_client, django_capture_on_commit_callbacks
):
    waiting, failed = new_job(status=JobStatus.QUEUED), failed_job()
    page = run_action(admin_client, "cancel_jobs", waiting, failed).content.decode()
    assert "Cancelled 1 job(s)." in page and "1 job(s) skipped" in page
    assert OcrJob.objects.get(id=waiting.id).status == JobStatus.CANCELLED
    with django_capture_on_commit_callbacks(execute=True):
        page = run_action(admin_client, "retry_jobs", failed).content.decode()
    assert "Retried 1 job(s)." in page
    assert OcrJob.objects.get(id=failed.id).status == JobStatus.QUEUED
    page = run_action(admin_client, "requeue_jobs", failed).content.decode()
    assert "Requeued 1 job(s)." in page
