"""V0-V2 end to end: the real API calling real OCR servers over HTTP."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from apps.jobs.models import JobStatus, OcrJob
from apps.ocr.corpus import truth

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT_S = 120


def first_words(name: str, count: int = 4) -> str:
    return " ".join(truth(name).split()[:count])


@pytest.mark.parametrize("version", ["v0", "v1", "v2"])
def test_sync_version_returns_recognized_text(api_server, auth_headers, version):
    response = httpx.post(
        f"{api_server}/{version}/ocr/sync",
        json={"pdfName": "sample.pdf"},
        headers=auth_headers,
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert first_words("sample.pdf") in " ".join(body["text"].split())
    assert body["pages"] == 1
    assert body["timings"]["total"] > 0
    job = OcrJob.objects.get(id=body["job_id"])
    assert (job.version, job.backend, job.status) == (version, "http", JobStatus.DONE)
    assert job.worker and job.finished_at
    pdf = httpx.get(api_server + body["pdf_url"], headers=auth_headers, timeout=30)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_v2_spreads_calls_over_servers(api_server, auth_headers):
    def call(_):
        return httpx.post(
            f"{api_server}/v2/ocr/sync",
            json={"pdfName": "sample.pdf"},
            headers=auth_headers,
            timeout=TIMEOUT_S,
        ).json()["job_id"]

    # Each of the API's 2 processes balances its own calls: 6 at once put at least 3 on one
    # process, which then must use both servers (2 would go to server 0 on each process).
    with ThreadPoolExecutor(6) as pool:
        ids = list(pool.map(call, range(6)))
    workers = set(OcrJob.objects.filter(id__in=ids).values_list("worker", flat=True))
    assert len(workers) == 2


def test_upload_goes_through_v1(api_server, auth_headers):
    from apps.ocr.corpus import resolve

    data = resolve("sample.pdf").read_bytes()
    response = httpx.post(
        f"{api_server}/v1/ocr/sync",
        files={"file": ("scan.pdf", data)},
        headers=auth_headers,
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 200, response.text
    assert first_words("sample.pdf") in " ".join(response.json()["text"].split())


@pytest.mark.parametrize("version", ["v0", "v1", "v2"])
@pytest.mark.parametrize(
    "payload",
    [{"pdfName": "../sample.pdf"}, {"pdfName": "/etc/passwd"}, {"pdfName": "missing.pdf"}, {}],
)
def test_sync_versions_refuse_bad_names(api_server, auth_headers, version, payload):
    url = f"{api_server}/{version}/ocr/sync"
    response = httpx.post(url, json=payload, headers=auth_headers, timeout=30)
    assert response.status_code == 400
    assert response.json()
    assert not OcrJob.objects.exists()


def test_v0_answers_503_when_no_ocr_server_answers(api_client, settings):
    settings.OCR_SERVER_URLS = ["http://127.0.0.1:1"]
    response = api_client.post(
        "/v0/ocr/sync", {"pdfName": "sample.pdf"}, content_type="application/json"
    )
    assert response.status_code == 503
    assert "no OCR server" in response.json()["detail"]
    assert OcrJob.objects.get().status == JobStatus.FAILED


def test_v0_answers_504_after_the_timeout(api_client, settings, ocr_servers):
    settings.OCR_SERVER_URLS = ocr_servers
    settings.OCR_HTTP_TIMEOUT_S = 0.05
    response = api_client.post(
        "/v0/ocr/sync", {"pdfName": "sample.pdf"}, content_type="application/json"
    )
    assert response.status_code == 504
    assert "did not answer" in response.json()["detail"]
