"""apps/jobs/versions.py is the one definition of the versions: everything derived from it
agrees (model choices, URLs, backends, bench cells, demo, locust scenario and classes)."""

import uuid
from pathlib import Path

import pytest
from django.urls import Resolver404, resolve

from apps.bench.decide import decision
from apps.bench.plan.cells import ALL_VERSIONS, MatrixParams, build_matrix, target_spec
from apps.bench.plan.defaults import full_plan
from apps.jobs import sync_views, versions
from apps.jobs.apps import check_version_backends
from apps.jobs.management.commands import demo
from apps.jobs.models import OcrJob
from tasks.backends.registry import backend_aliases

ROOT = Path(__file__).resolve().parent.parent.parent
JOB_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")


def test_the_definition():
    assert versions.names() == ("v0", "v1", "v2", "v3", "v4", "v5", "v6", "api")
    assert versions.sync_versions() == ("v0", "v1", "v2")
    assert versions.version_backends() == {"v3": "db", "v4": "redis", "v5": "rabbit", "v6": "kafka"}
    with pytest.raises(versions.UnknownVersion):
        versions.backend_for("v0")
    with pytest.raises(versions.UnknownVersion, match="choose one of"):
        versions.get("v7")
    with pytest.raises(ValueError, match="backend"):
        versions.VersionDef("v9", versions.QUEUE, "v9: nothing")


def test_model_choices_are_the_definition():
    assert OcrJob._meta.get_field("version").choices == versions.choices()
    assert versions.choices()[5] == ("v5", "v5: Celery on RabbitMQ")  # as in 0001_initial


@pytest.mark.parametrize("name", versions.names())
def test_every_version_has_its_urls(name):
    match = resolve(versions.submit_path(name))
    kind = versions.get(name).kind
    if kind == versions.SYNC:
        assert match.url_name == f"{name}-sync"
        return
    assert match.url_name == ("version-jobs" if kind == versions.QUEUE else "jobs")
    detail = resolve(versions.status_path(name, str(JOB_ID)))
    assert detail.url_name == ("version-job-detail" if kind == versions.QUEUE else "job-detail")
    assert detail.kwargs["job_id"] == JOB_ID
    if kind == versions.QUEUE:
        assert match.kwargs == {"version": name} and detail.kwargs["version"] == name


def test_sync_views_cover_the_sync_versions():
    assert list(sync_views.VIEWS) == list(versions.sync_versions())


@pytest.mark.parametrize("path", ["/v7/ocr/jobs", "/v0/ocr/jobs", "/v3/ocr/sync", "/v33/ocr/jobs"])
def test_unknown_version_paths_do_not_resolve(path):
    with pytest.raises(Resolver404):
        resolve(path)


@pytest.mark.django_db
def test_unknown_version_is_404(api_client):
    response = api_client.post("/v7/ocr/jobs", {"pdfName": "sample.pdf"}, "application/json")
    assert response.status_code == 404


def test_every_queue_version_has_its_backend(settings):
    assert set(versions.version_backends().values()) <= set(backend_aliases())
    assert check_version_backends() == []
    settings.JOB_BACKENDS = {k: v for k, v in settings.JOB_BACKENDS.items() if k != "kafka"}
    (error,) = check_version_backends()
    assert error.id == "jobs.E001" and "v6" in error.msg


def test_bench_cells_cover_every_version():
    assert versions.sync_versions() + versions.queue_versions() == ALL_VERSIONS
    assert [c.target for c in build_matrix(MatrixParams(workers=[1], workloads=["ocr"]))] == list(
        ALL_VERSIONS
    )
    assert {c.target for c in full_plan([])} == set(ALL_VERSIONS)
    for name in versions.queue_versions():
        assert target_spec(name) == (name, "queue", name, versions.backend_for(name))
    assert set(decision.SYNC_NAMES) == set(versions.sync_versions())


def test_demo_uses_the_definition():
    assert list(versions.sync_versions()) == demo.SYNC_VERSIONS
    assert list(versions.queue_versions()) == demo.QUEUE_VERSIONS
