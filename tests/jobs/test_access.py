"""Access control: anonymous 401, a job seen only by its owner (and holders of the view
permission), per-token throttling, bench workloads behind a permission; staff alone grants
nothing."""

import httpx
import pytest
from django.core.cache import cache
from django.test import Client

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob

pytestmark = pytest.mark.django_db
MISSING = "00000000-0000-0000-0000-000000000000"
ENDPOINTS = [
    ("post", "/v0/ocr/sync"),
    ("post", "/v1/ocr/sync"),
    ("post", "/v2/ocr/sync"),
    *[("post", f"/{v}/ocr/jobs") for v in ("v3", "v4", "v5", "v6")],
    *[("get", f"/{v}/ocr/jobs") for v in ("v3", "v4", "v5", "v6")],
    ("get", f"/v3/ocr/jobs/{MISSING}"),
    ("get", f"/v3/ocr/jobs/{MISSING}?wait=1"),
    ("post", "/api/jobs"),
    ("get", "/api/jobs"),
    ("get", f"/api/jobs/{MISSING}"),
    ("get", f"/api/jobs/{MISSING}?wait=1"),
    ("get", f"/api/jobs/{MISSING}/pdf"),
]


def as_user(key: str) -> Client:
    return Client(headers={"Authorization": f"Token {key}"})


def submit(client: Client, workload: str = "ocr", url: str = "/api/jobs"):
    body = {"pdfName": "sample.pdf", "backend": "db", "workload": workload}
    return client.post(url, body, content_type="application/json")


@pytest.fixture
def no_publish(monkeypatch):
    """Jobs stay PENDING (no broker involved): these tests are about the API's answers."""
    monkeypatch.setattr(services, "job_publish", lambda **_: True)


@pytest.mark.parametrize("method,url", ENDPOINTS)
def test_anonymous_gets_401_everywhere(client, method, url):
    response = getattr(client, method)(url, {"pdfName": "sample.pdf"}, **_json(method))
    assert response.status_code == 401, (url, response.content)
    assert response.headers["WWW-Authenticate"] == "Token"
    assert not OcrJob.objects.exists()


@pytest.mark.parametrize("url", ["/api/jobs", "/v1/ocr/sync"])
def test_a_wrong_token_gets_401(url):
    response = as_user("not-a-token").post(url, {}, content_type="application/json")
    assert response.status_code == 401
    assert "Invalid token" in response.json()["detail"]


def _json(method: str) -> dict:
    return {"content_type": "application/json"} if method == "post" else {}


def test_the_ocr_endpoint_is_not_on_the_api(api_client):
    assert api_client.post("/ocr/predict", {"pdfName": "sample.pdf"}).status_code == 404


def test_ocr_servers_mount_only_the_ocr_endpoint(ocr_servers):
    server = ocr_servers[0]
    assert httpx.get(f"{server}/api/jobs", timeout=10).status_code == 404
    assert httpx.get(f"{server}/admin/", timeout=10).status_code == 404
    assert httpx.get(f"{server}/ocr/predict", timeout=10).status_code == 405  # POST only


def test_a_job_is_seen_by_its_owner_and_view_permission_holders_only(make_api_user, no_publish):
    _, alice = make_api_user("alice")
    _, bob = make_api_user("bob")
    _, staff = make_api_user("staff", staff=True)
    _, auditor = make_api_user("auditor", perms=["jobs.view_ocrjob"])
    response = submit(as_user(alice))
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert OcrJob.objects.get(id=job_id).owner.username == "alice"
    for user in (bob, staff):
        for url in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}?wait=1", f"/api/jobs/{job_id}/pdf"):
            assert as_user(user).get(url).status_code == 404, url
        assert as_user(user).get("/api/jobs").json()["results"] == []
    assert as_user(alice).get(f"/api/jobs/{job_id}").status_code == 200
    assert as_user(auditor).get(f"/api/jobs/{job_id}").json()["id"] == job_id
    assert [j["id"] for j in as_user(alice).get("/api/jobs").json()["results"]] == [job_id]
    assert [j["id"] for j in as_user(auditor).get("/api/jobs").json()["results"]] == [job_id]


def test_version_endpoints_keep_jobs_apart_too(make_api_user, no_publish):
    _, alice = make_api_user("alice")
    _, bob = make_api_user("bob")
    job_id = submit(as_user(alice), url="/v3/ocr/jobs").json()["id"]
    assert as_user(bob).get(f"/v3/ocr/jobs/{job_id}").status_code == 404
    assert as_user(bob).get("/v3/ocr/jobs").json()["count"] == 0
    assert as_user(alice).get(f"/v3/ocr/jobs/{job_id}").status_code == 200
    assert as_user(alice).get("/v3/ocr/jobs").json()["count"] == 1


@pytest.mark.parametrize("workload", ["noop", "fail", "sleep:1", "cpu:1"])
def test_bench_workloads_are_refused_to_a_plain_user(make_api_user, no_publish, workload):
    _, alice = make_api_user("alice")
    response = submit(as_user(alice), workload)
    assert response.status_code == 403
    assert "bench workload" in response.json()["detail"]
    assert not OcrJob.objects.exists()


def test_bench_workloads_need_the_permission_not_staff(make_api_user, no_publish):
    _, alice = make_api_user("alice")
    _, runner = make_api_user("runner", bench=True)
    _, staff = make_api_user("staff", staff=True)
    assert submit(as_user(alice), "ocr").status_code == 202
    assert submit(as_user(runner), "noop").status_code == 202
    assert submit(as_user(staff), "sleep:1").status_code == 403
    assert submit(as_user(staff), "ocr").status_code == 202


def test_throttling_answers_429_with_retry_after(make_api_user, settings):
    settings.API_THROTTLE_RATE = "3/min"
    cache.clear()
    _, alice = make_api_user("alice")
    codes = [as_user(alice).get("/api/jobs").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = as_user(alice).get("/api/jobs")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    _, bob = make_api_user("bob")
    assert as_user(bob).get("/api/jobs").status_code == 200  # per token


def test_async_sync_views_are_throttled_the_same(make_api_user, settings):
    settings.API_THROTTLE_RATE = "1/min"
    cache.clear()
    _, alice = make_api_user("alice")
    as_user(alice).get("/api/jobs")
    response = as_user(alice).post("/v1/ocr/sync", {}, content_type="application/json")
    assert response.status_code == 429 and "Retry-After" in response.headers


def test_bench_users_are_not_throttled(api_client, settings):
    settings.API_THROTTLE_RATE = "2/min"
    cache.clear()
    assert {api_client.get("/api/jobs").status_code for _ in range(5)} == {200}


def test_staff_alone_is_throttled(make_api_user, settings):
    settings.API_THROTTLE_RATE = "2/min"
    cache.clear()
    _, staff = make_api_user("staff", staff=True)
    assert [as_user(staff).get("/api/jobs").status_code for _ in range(3)] == [200, 200, 429]


def test_an_authenticated_async_call_records_its_owner(make_api_user, settings):
    settings.OCR_SERVER_URLS = ["http://127.0.0.1:1"]
    user, alice = make_api_user("alice")
    body = {"pdfName": "sample.pdf"}
    response = as_user(alice).post("/v1/ocr/sync", body, content_type="application/json")
    assert response.status_code == 503
    job = OcrJob.objects.get()
    assert (job.owner, job.status) == (user, JobStatus.FAILED)


def test_session_login_works_for_the_browsable_api(admin_client, admin_user, no_publish):
    assert admin_client.get("/api/jobs", HTTP_ACCEPT="text/html").status_code == 200
    response = submit(admin_client, "noop")
    assert response.status_code == 202, response.content
    assert OcrJob.objects.get(id=response.json()["id"]).owner == admin_user
