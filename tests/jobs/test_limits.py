"""Limits and retention: 413 before the body is read, paginated lists, PDF paths confined
to MEDIA_ROOT, purge_jobs deleting rows and files together."""

import asyncio
import socket
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.jobs import services
from apps.jobs.management.commands.purge_jobs import parse_age
from apps.jobs.models import JobStatus, OcrJob
from ocrproject.bodylimit import BodyLimitASGI, BodyLimitWSGI

pytestmark = pytest.mark.django_db


def run_asgi(app, headers: list, chunks: list[bytes]) -> tuple[int, list]:
    """Drive an ASGI app with one HTTP request; (status, messages received by the app)."""
    sent, asked = [], []
    queue = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive():
        asked.append(1)
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/jobs", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], asked


async def never_called(scope, receive, send):
    raise AssertionError("the app must not run for an oversized body")


def test_content_length_over_the_limit_is_refused_unread():
    app = BodyLimitASGI(never_called, max_bytes=100)
    status, asked = run_asgi(app, [(b"content-length", b"101")], [b"x" * 101])
    assert status == 413 and asked == []  # not one byte was read


def test_a_streamed_body_is_cut_off_at_the_limit():
    from django.core.asgi import get_asgi_application

    app = BodyLimitASGI(get_asgi_application(), max_bytes=100)
    status, asked = run_asgi(app, [(b"transfer-encoding", b"chunked")], [b"x" * 60] * 5)
    assert status == 413 and len(asked) == 2  # stopped at the chunk that crossed it


def test_wsgi_refuses_oversized_and_unsized_bodies():
    calls = []
    app = BodyLimitWSGI(lambda env, start: calls.append(env) or [b""], max_bytes=100)
    statuses = []

    def start(status, headers):
        statuses.append(status)

    app({"CONTENT_LENGTH": "101"}, start)
    app({"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}, start)
    app({"CONTENT_LENGTH": "50"}, start)
    assert statuses[:2] == ["413 Request Entity Too Large", "411 Length Required"]
    assert len(calls) == 1


def oversized_request(base_url: str, length: int, path: str = "/api/jobs") -> bytes:
    """Announce `length` bytes, send none, read the answer (a raw socket: a client that
    streams the body might fail writing before it reads the 413)."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {length}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(4096):  # the server closes the connection after its 413
            answer += chunk
        return answer


@pytest.mark.django_db(transaction=True)
def test_the_real_api_answers_413_before_reading(api_server, settings):
    answer = oversized_request(api_server, settings.REQUEST_MAX_BYTES + 1)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"request body larger than" in answer


def test_the_ocr_server_answers_413_before_reading(ocr_servers, settings):
    answer = oversized_request(ocr_servers[0], settings.REQUEST_MAX_BYTES + 1, "/ocr/predict")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_lists_paginate_and_keep_filters(api_client, api_token):
    from rest_framework.authtoken.models import Token

    owner = Token.objects.get(key=api_token).user
    for status in ["PENDING"] * 4 + ["QUEUED"]:
        OcrJob.objects.create(
            version="v3", backend="db", document="sample.pdf", status=status, owner=owner
        )
    page = api_client.get("/api/jobs", {"limit": 2}).json()
    assert page["count"] == 5 and len(page["results"]) == 2 and "offset=2" in page["next"]
    rest = api_client.get("/api/jobs", {"limit": 2, "offset": 4}).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    queued = api_client.get("/v3/ocr/jobs", {"status": "QUEUED"}).json()
    assert queued["count"] == 1 and queued["results"][0]["status"] == "QUEUED"


def done_job(owner=None, **fields) -> OcrJob:
    now = timezone.now()
    return OcrJob.objects.create(
        version="v3",
        backend="db",
        document="sample.pdf",
        status=JobStatus.DONE,
        finished_at=now,
        owner=owner,
        **fields,
    )


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    (tmp_path / "media" / "results").mkdir(parents=True)
    (tmp_path / "secret.pdf").write_bytes(b"%PDF-secret")
    return settings.MEDIA_ROOT


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "../secret.pdf", "/etc/passwd", "results/../../secret.pdf"]
)
def test_pdf_paths_outside_media_root_are_404(api_client, api_token, media, name):
    from rest_framework.authtoken.models import Token

    job = done_job(owner=Token.objects.get(key=api_token).user, result_pdf=name)
    assert api_client.get(f"/api/jobs/{job.id}/pdf").status_code == 404


def test_pdf_under_media_root_is_served(api_client, api_token, media):
    from rest_framework.authtoken.models import Token

    (media / "results" / "a.pdf").write_bytes(b"%PDF-ok")
    job = done_job(owner=Token.objects.get(key=api_token).user, result_pdf="results/a.pdf")
    response = api_client.get(f"/api/jobs/{job.id}/pdf")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"%PDF-ok"


def test_purge_deletes_old_finished_jobs_with_their_files(media):
    old, recent = done_job(result_pdf="results/old.pdf"), done_job(result_pdf="results/new.pdf")
    old.upload.save("old-scan.pdf", ContentFile(b"%PDF-upload"))
    for name in ("old.pdf", "new.pdf"):
        (media / "results" / name).write_bytes(b"%PDF")
    running = services.job_start_sync(version="v0", document="sample.pdf")
    done_job(result_pdf="../secret.pdf")  # a crafted path: the row goes, the file stays
    long_ago = timezone.now() - timedelta(days=8)
    OcrJob.objects.exclude(id=recent.id).update(created_at=long_ago)
    upload_path = media / old.upload.name

    call_command("purge_jobs", "--older-than", "7d", "--max-age", "30d")  # keeps `running`

    assert set(OcrJob.objects.values_list("id", flat=True)) == {recent.id, running.id}
    assert not (media / "results" / "old.pdf").exists() and not upload_path.exists()
    assert (media / "results" / "new.pdf").exists()
    assert (media.parent / "secret.pdf").exists()  # never deletes outside MEDIA_ROOT


def test_purge_defaults_to_the_retention_setting(media, settings):
    settings.JOB_RETENTION_DAYS = 1
    job = done_job()
    OcrJob.objects.filter(id=job.id).update(created_at=timezone.now() - timedelta(hours=25))
    result = services.jobs_purge(older_than=timedelta(days=settings.JOB_RETENTION_DAYS))
    assert result.jobs == 1 and not OcrJob.objects.exists()


def test_ages_parse_and_bad_ages_are_refused():
    assert parse_age("7d") == timedelta(days=7) and parse_age("12h") == timedelta(hours=12)
    assert parse_age("30m") == timedelta(minutes=30) and parse_age("2") == timedelta(days=2)
    with pytest.raises(CommandError):
        call_command("purge_jobs", "--older-than", "soon")
