"""The queue API (V3-V6 and /api/jobs): submit answers 202 at once; status; bad input."""

import io

import pytest
from PIL import Image

from apps.jobs.models import JobStatus, OcrJob
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, url, data, **kwargs):
    return client.post(url, data, content_type="application/json", **kwargs)


@pytest.mark.parametrize(
    "version,backend", [("v3", "db"), ("v4", "redis"), ("v5", "rabbit"), ("v6", "kafka")]
)
def test_submit_answers_202_with_status_url(api_client, version, backend):
    response = post(api_client, f"/{version}/ocr/jobs", {"pdfName": "sample.pdf"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] in {"PENDING", "QUEUED"}
    assert body["status_url"].endswith(f"/api/jobs/{body['id']}")
    job = OcrJob.objects.get(id=body["id"])
    assert (job.version, job.backend, job.workload) == (version, backend, "ocr")
    detail = wait_for(  # published after the response, on a background thread
        lambda: (
            (d := api_client.get(f"/{version}/ocr/jobs/{job.id}").json())["status"] == "QUEUED"
            and d
        ),
        30,
        message="the job published",
    )
    assert detail["text"] is None


def test_api_jobs_reaches_any_backend_with_a_workload(api_client):
    response = post(
        api_client,
        "/api/jobs",
        {
            "pdfName": "sample.pdf",
            "backend": "dramatiq-redis",
            "workload": "sleep:0.1",
            "tag": "t1",
        },
    )
    assert response.status_code == 202, response.content
    job = OcrJob.objects.get(id=response.json()["id"])
    assert (job.version, job.backend, job.workload, job.run_tag) == (
        "api",
        "dramatiq-redis",
        "sleep:0.1",
        "t1",
    )
    listed = api_client.get("/api/jobs", {"backend": "dramatiq-redis"}).json()
    assert [row["id"] for row in listed["results"]] == [str(job.id)]


@pytest.mark.parametrize(
    "url,payload,message",
    [
        ("/v3/ocr/jobs", {"pdfName": "../etc/passwd"}, "pdfName"),
        ("/v3/ocr/jobs", {"pdfName": "sample.pdf", "workload": "explode"}, "workload"),
        ("/v3/ocr/jobs", {"pdfName": "sample.pdf", "workload": "sleep:-1"}, "workload"),
        ("/api/jobs", {"pdfName": "sample.pdf", "backend": "nope"}, "backend"),
        ("/api/jobs", {"pdfName": "sample.pdf"}, "backend"),
        ("/v3/ocr/jobs", {"pdfName": "sample.pdf", "language": "klingon"}, "language"),
    ],
)
def test_bad_input_gets_a_clear_400(api_client, url, payload, message):
    response = post(api_client, url, payload)
    assert response.status_code == 400
    assert message in response.json()
    assert not OcrJob.objects.exists()


def test_upload_refused_by_content_not_name(api_client):
    fake = io.BytesIO(b"hello, I am not a PDF")
    fake.name = "scan.pdf"
    response = api_client.post("/v3/ocr/jobs", {"file": fake})
    assert response.status_code == 400
    assert "file" in response.json()


def test_upload_larger_than_the_limit_is_refused(api_client, settings):
    settings.UPLOAD_MAX_BYTES = 1000
    image = io.BytesIO()
    Image.new("L", (400, 400), 255).save(image, "PNG", compress_level=0)
    image.seek(0)
    image.name = "page.png"
    response = api_client.post("/v3/ocr/jobs", {"file": image})
    assert response.status_code == 400
    assert "file" in response.json()


def test_unknown_job_is_404(api_client):
    assert api_client.get("/api/jobs/00000000-0000-0000-0000-000000000000").status_code == 404


def test_ocr_job_through_the_table_queue_end_to_end(api_client, start_worker):
    from apps.ocr.corpus import resolve, truth

    upload = io.BytesIO(resolve("sample.pdf").read_bytes())
    upload.name = "my scan.pdf"
    response = api_client.post("/v3/ocr/jobs", {"file": upload})
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    start_worker("db")
    wait_for(lambda: OcrJob.objects.get(id=job_id).is_finished, 120, message="the OCR job")
    body = api_client.get(f"/api/jobs/{job_id}").json()
    assert body["status"] == JobStatus.DONE, body["error"]
    assert body["document"] == "my_scan.pdf"  # the sanitized upload name
    assert " ".join(truth("sample.pdf").split()[:4]) in " ".join(body["text"].split())
    pdf = api_client.get(f"/api/jobs/{job_id}/pdf")
    assert pdf.status_code == 200 and b"".join(pdf.streaming_content).startswith(b"%PDF")


def test_schema_and_docs_render(api_client):
    assert api_client.get("/api/schema/").status_code == 200
    assert api_client.get("/api/docs/").status_code == 200
