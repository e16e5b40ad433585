"""Health, readiness, metrics and the dashboard, on the real database and brokers."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from apps.ops import views

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_snapshots(settings):
    """Each test sees its own rows: no snapshot kept from the previous test."""
    settings.OPS_CACHE_S = 0
    views.METRICS.clear()
    views.READINESS.clear()


def make_job(backend: str = "db", **fields) -> OcrJob:
    job = services.job_create(version="api", backend=backend, document="sample.pdf", publish=False)
    OcrJob.objects.filter(id=job.id).update(**fields)
    return OcrJob.objects.get(id=job.id)


def test_healthz_answers_without_dependencies(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_the_database_and_every_broker(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert {"database", "redis", "rabbitmq", "kafka"} <= set(body["checks"])
    assert set(body["checks"].values()) == {"ok"}


def test_readyz_is_503_naming_the_broker_that_is_down_without_details(client, settings):
    settings.JOB_BACKENDS = {
        **settings.JOB_BACKENDS,
        "rabbit": {**settings.JOB_BACKENDS["rabbit"], "OPTIONS": {"url": "amqp://127.0.0.1:1//"}},
    }
    settings.OPS_CHECK_TIMEOUT_S = 1.0
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503 and body["status"] == "unavailable"
    down = [name for name, check in body["checks"].items() if check != "ok"]
    assert len(down) == 1 and body["checks"][down[0]] == "fail"
    assert body["checks"]["database"] == "ok"
    assert "127.0.0.1" not in response.content.decode()  # no addresses, no error texts


def metric_lines(client) -> list[str]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode().splitlines()


def test_metrics_count_jobs_depth_histograms_and_live_workers(client):
    now = timezone.now()
    make_job(status=JobStatus.QUEUED)
    make_job(status=JobStatus.QUEUED, run_after=now + timedelta(hours=1))  # held back
    make_job(
        status=JobStatus.DONE,
        queued_at=now - timedelta(seconds=3.5),
        published_at=now - timedelta(seconds=2),  # a republish
        started_at=now - timedelta(seconds=2),
        finished_at=now - timedelta(seconds=1.5),
    )
    make_job(
        status=JobStatus.RUNNING,
        worker="host:42",
        started_at=now,
        lease_expires_at=now + timedelta(seconds=30),
    )
    lines = metric_lines(client)
    assert 'ocrlab_jobs{backend="db",status="QUEUED",version="api"} 2.0' in lines
    assert 'ocrlab_queue_depth{backend="db"} 1.0' in lines
    assert 'ocrlab_queue_depth{backend="kafka"} 0.0' in lines
    assert 'ocrlab_job_duration_seconds_bucket{backend="db",le="0.25"} 0.0' in lines
    assert 'ocrlab_job_duration_seconds_bucket{backend="db",le="0.5"} 1.0' in lines
    assert 'ocrlab_job_duration_seconds_count{backend="db"} 1.0' in lines
    assert 'ocrlab_job_pickup_seconds_bucket{backend="db",le="1"} 0.0' in lines
    assert 'ocrlab_job_pickup_seconds_bucket{backend="db",le="2.5"} 1.0' in lines
    assert 'ocrlab_jobs_republished{backend="db"} 1.0' in lines
    assert 'ocrlab_live_workers{backend="db"} 1.0' in lines
    assert any(
        line.startswith(
            'ocrlab_worker_last_heartbeat_timestamp_seconds{backend="db",worker="host:42"}'
        )
        for line in lines
    )


def test_metrics_and_readyz_can_be_restricted_to_networks(client, settings):
    settings.OPS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 403
    assert client.get("/readyz").status_code == 403
    assert client.get("/healthz").status_code == 200
    settings.OPS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200


def test_dashboard_is_staff_only(client, django_user_model):
    assert client.get("/admin/ops/").status_code == 302  # to the admin login
    user = django_user_model.objects.create_user("plain", password="pw-plain-123")
    client.force_login(user)
    assert client.get("/admin/ops/").status_code == 302
    assert client.get("/admin/ops/dashboard.json").status_code == 302


def test_dashboard_needs_the_view_permission_not_staff_alone(client, django_user_model):
    user = django_user_model.objects.create_user("staffer", password="pw-st-123", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/ops/").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_ocrjob"))
    user = django_user_model.objects.get(pk=user.pk)  # a fresh permission cache
    client.force_login(user)
    assert client.get("/admin/ops/dashboard.json").status_code == 200


def test_dashboard_shows_depth_workers_and_failures(admin_client):
    now = timezone.now()
    make_job(backend="redis", status=JobStatus.QUEUED)
    running = make_job(
        status=JobStatus.RUNNING,
        worker="host:7",
        started_at=now,
        lease_expires_at=now + timedelta(seconds=30),
    )
    failed = make_job(status=JobStatus.FAILED, finished_at=now, error="ValueError: boom")
    page = admin_client.get("/admin/ops/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'http-equiv="refresh"' in html and "host:7" in html and "ValueError: boom" in html
    assert f"/admin/jobs/ocrjob/{running.id}/change/" in html
    assert f"/admin/jobs/ocrjob/{failed.id}/change/" in html
    data = admin_client.get("/admin/ops/dashboard.json").json()
    assert data["queue_depth"]["redis"] == 1
    assert [w["worker"] for w in data["live_workers"]] == ["host:7"]
    assert data["finished_last_minute"] == {"FAILED": 1}
    assert admin_client.get("/admin/").content.decode().count('href="/admin/ops/"') == 1


def test_readyz_and_metrics_answer_loopback_only_by_default(client, settings):
    settings.OPS_ALLOWED_NETWORKS = ["127.0.0.1/32", "::1/128"]  # the default
    assert client.get("/metrics", REMOTE_ADDR="198.18.0.7").status_code == 403
    assert client.get("/readyz", REMOTE_ADDR="198.18.0.7").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(client, settings):
    settings.OPS_ALLOWED_NETWORKS = ["198.18.0.0/24"]
    forwarded = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.18.0.9"}
    settings.TRUSTED_PROXIES = []
    assert client.get("/metrics", **forwarded).status_code == 403  # a client's own header
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    assert client.get("/metrics", **forwarded).status_code == 200
    spoofed = {**forwarded, "HTTP_X_FORWARDED_FOR": "198.18.0.9, 203.0.113.5"}
    assert client.get("/metrics", **spoofed).status_code == 403  # the last hop counts


@pytest.mark.django_db(transaction=True)
def test_parallel_scrapes_share_one_set_of_queries(settings):
    """200 scrapes at once within one refresh interval: one set of queries in all."""
    settings.OPS_CACHE_S = 60
    make_job(status=JobStatus.QUEUED)
    queries: list[str] = []
    lock = threading.Lock()

    def count(execute, sql, params, many, context):
        with lock:
            queries.append(sql)
        return execute(sql, params, many, context)

    def scrape(_: int) -> int:
        try:
            with connection.execute_wrapper(count):
                return Client().get("/metrics").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=40) as pool:
        codes = list(pool.map(scrape, range(200)))
    assert codes == [200] * 200
    one_set = len(queries)
    assert 0 < one_set <= 10, queries  # the collector's aggregates, once
    views.METRICS.clear()
    scrape(0)
    assert len(queries) == 2 * one_set  # a refresh costs the same set again
