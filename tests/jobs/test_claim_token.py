"""Each claim has its own token: a cancelled run whose job was retried can never store."""

import threading

import pytest
from django.db import connection

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from tasks import process
from tasks.backends.registry import get_backend
from tests.conftest import wait_for

ALIAS = "memory"


def reload(job_id) -> OcrJob:
    return OcrJob.objects.get(id=job_id)


@pytest.mark.django_db
def test_a_claim_made_after_cancel_and_retry_has_the_same_attempt_but_a_new_token():
    job = services.job_create(version="api", backend="db", document="sample.pdf", publish=False)
    old = services.job_claim(job_id=job.id, worker="a")
    assert services.job_cancel(job_id=job.id) and services.job_retry(job_id=job.id)
    new = services.job_claim(job_id=job.id, worker="b")
    assert new.attempts == old.attempts == 1 and new.claim_token != old.claim_token
    assert not services.job_heartbeat(job_id=job.id, claim=old.claim_token)
    with pytest.raises(services.StaleClaim):
        services.job_succeed(job_id=job.id, claim=old.claim_token, result=services.JobResult())
    with pytest.raises(services.StaleClaim):
        services.job_fail(job_id=job.id, claim=old.claim_token, error="old run")
    assert services.job_heartbeat(job_id=job.id, claim=new.claim_token)
    services.job_succeed(job_id=job.id, claim=new.claim_token, result=services.JobResult(text="b"))
    assert (reload(job.id).status, reload(job.id).result_text) == (JobStatus.DONE, "b")


@pytest.mark.django_db(transaction=True)
def test_cancel_then_retry_of_a_running_job_lets_only_the_new_run_store(settings, monkeypatch):
    """A real process_job (child process, heartbeats) is cancelled mid-run, the job is
    retried and claimed again: the old run's heartbeat is refused and it stores nothing;
    the new run stores exactly once."""
    settings.JOB_LEASE_S = 0.6  # heartbeat every 0.2 s
    get_backend(ALIAS).purge()
    job = services.job_create(
        version="api", backend=ALIAS, document="sample.pdf", workload="sleep:3", publish=False
    )
    stores: list[str] = []
    real_succeed = services.job_succeed

    def counting_succeed(**kw):
        real_succeed(**kw)
        stores.append(kw["result"].timings.get("total"))

    monkeypatch.setattr(services, "job_succeed", counting_succeed)
    old_outcome: list[str] = []

    def old_run() -> None:
        try:
            old_outcome.append(process.process_job(job.id, worker="old"))
        finally:
            connection.close()

    thread = threading.Thread(target=old_run)
    thread.start()
    wait_for(lambda: reload(job.id).status == JobStatus.RUNNING, 60, message="old run claimed")
    assert services.job_cancel(job_id=job.id) and services.job_retry(job_id=job.id)
    new = services.job_claim(job_id=job.id, worker="new")
    assert new is not None and new.attempts == 1  # the attempt number the old run holds too
    thread.join(60)
    assert old_outcome == ["abandoned"]  # its heartbeat matched no row: killed, nothing stored
    assert reload(job.id).status == JobStatus.RUNNING and reload(job.id).worker == "new"
    OcrJob.objects.filter(id=job.id).update(workload="noop")
    new.workload = "noop"
    assert process.process_job(job.id, worker="new", claimed=new) == "done"
    assert len(stores) == 1 and reload(job.id).status == JobStatus.DONE
    get_backend(ALIAS).purge()
