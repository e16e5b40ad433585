"""The submit path: the publish runs after the response (the request neither waits on the
broker nor holds its database connection meanwhile), the relay catches what failed, and
an Idempotency-Key makes a retried submit return the first job."""

import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.jobs import background, services
from apps.jobs.models import JobStatus, OcrJob
from tasks.backends.registry import reset_backends

BODY = {"pdfName": "sample.pdf", "backend": "redis", "workload": "noop"}


def post(client, url="/api/jobs", key: str | None = None, body=BODY):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(url, body, content_type="application/json", headers=headers)


@pytest.mark.django_db
def test_a_repeated_idempotency_key_returns_the_first_job(api_client):
    first = post(api_client, key="order-42")
    again = post(api_client, key="order-42")
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again["Location"] == first["Location"]
    assert OcrJob.objects.filter(idempotency_key="order-42").count() == 1
    other = post(api_client, key="order-43")
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]


@pytest.mark.django_db
def test_the_versioned_submit_honours_the_key_and_keys_are_per_user(api_client, make_api_user):
    first = post(api_client, "/v4/ocr/jobs", key="k1", body={"pdfName": "sample.pdf"})
    assert post(api_client, "/v4/ocr/jobs", key="k1").json()["id"] == first.json()["id"]
    _, token = make_api_user("carol")
    carol = Client(headers={"Authorization": f"Token {token}"})
    theirs = post(carol, "/v4/ocr/jobs", key="k1", body={"pdfName": "sample.pdf"})
    assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "caf\u00e9"])
def test_a_malformed_idempotency_key_is_a_400(api_client, key):
    response = post(api_client, key=key)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()
    assert not OcrJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_repeats_of_a_key_make_one_job(django_user_model):
    owner = django_user_model.objects.create(username="racer")
    jobs: list[tuple[OcrJob, bool]] = []
    start = threading.Barrier(4)

    def submit() -> None:
        try:
            start.wait()
            jobs.append(
                services.job_submit(
                    owner=owner,
                    idempotency_key="same",
                    version="api",
                    backend="db",
                    document="sample.pdf",
                    workload="noop",
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert background.drain(30)
    assert len({job.id for job, _ in jobs}) == 1 and sum(made for _, made in jobs) == 1
    assert OcrJob.objects.filter(owner=owner).count() == 1


@pytest.fixture
def dead_redis(settings):
    """The `redis` alias pointed at a port where nothing listens."""
    settings.JOB_BACKENDS = {
        **settings.JOB_BACKENDS,
        "redis": {**settings.JOB_BACKENDS["redis"], "OPTIONS": {"url": "redis://127.0.0.1:1/0"}},
    }
    reset_backends()
    yield
    reset_backends()


@pytest.mark.django_db(transaction=True)
def test_a_failed_background_publish_leaves_the_job_pending_for_the_relay(api_client, dead_redis):
    response = post(api_client)
    assert response.status_code == 202
    assert background.drain(30)
    assert OcrJob.objects.get(id=response.json()["id"]).status == JobStatus.PENDING


@pytest.mark.django_db
def test_the_relay_resends_an_overdue_queued_job_unless_busy_workers_have_not_reached_it(
    settings,
):
    settings.RELAY_QUEUED_STALE_S = 60
    now = timezone.now()

    def job(status: str, published_ago_s: float) -> OcrJob:
        created = services.job_create(version="api", backend="memory", document="d", publish=False)
        at = now - timedelta(seconds=published_ago_s)
        fields = {"status": status, "published_at": at, "queued_at": at, "created_at": at}
        if status == JobStatus.RUNNING:
            fields |= {"started_at": now, "lease_expires_at": now + timedelta(minutes=5)}
        OcrJob.objects.filter(id=created.id).update(**fields)
        return created

    waiting = job(JobStatus.QUEUED, 120)
    busy = job(JobStatus.RUNNING, 300)  # published before `waiting`: workers not there yet
    overdue = services._queued_overdue(OcrJob.objects.filter(backend="memory"), now)
    assert list(overdue) == []
    OcrJob.objects.filter(id=busy.id).update(published_at=now - timedelta(seconds=30))
    overdue = services._queued_overdue(OcrJob.objects.filter(backend="memory"), now)
    assert list(overdue) == [waiting]  # a younger job runs: `waiting`'s message was lost
    OcrJob.objects.filter(id=busy.id).delete()
    overdue = services._queued_overdue(OcrJob.objects.filter(backend="memory"), now)
    assert list(overdue) == [waiting]  # idle workers, 2 minutes unclaimed


def test_the_resend_interval_derives_from_the_lease():
    code = (
        "import os; os.environ.pop('RELAY_QUEUED_STALE_S', None); os.environ['JOB_LEASE_S']='45'; "
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.RELAY_QUEUED_STALE_S)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout.strip()) == 90.0
