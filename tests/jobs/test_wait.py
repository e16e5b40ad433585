"""`?wait=S` on a job's detail URLs: the real API (uvicorn), real workers, real NOTIFY.

A waiter answers when its job finishes, or at its timeout with the current state, and
holds no database connection while it waits (the budget of tests/jobs/test_load.py).
"""

import asyncio
import threading

import httpx
import psycopg
import pytest
from django.db import connection

from apps.jobs import services, waiting
from apps.jobs.models import JobStatus
from ocrproject.env import api_auth_headers
from tests.conftest import wait_for
from tests.jobs.test_load import ConnectionSampler, connection_budget

pytestmark = pytest.mark.django_db(transaction=True)
WAITERS = 50
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"
BODY = {"backend": "db", "pdfName": "sample.pdf", "workload": "noop", "tag": "wait"}


@pytest.fixture(autouse=True)
def _token(api_token):
    """The `bench` user's token in OCRLAB_API_TOKEN: api_auth_headers() sends it."""


def client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=120, headers=api_auth_headers())


def submit(http: httpx.Client, path: str = "/api/jobs", body: dict = BODY) -> str:
    response = http.post(path, json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_a_waiter_gets_done_when_a_worker_finishes_the_job(api_server, start_worker):
    with client(api_server) as http:
        job_id = submit(http)
        answers = []
        waiter = threading.Thread(
            target=lambda: answers.append(http.get(f"/api/jobs/{job_id}", params={"wait": 60}))
        )
        waiter.start()
        worker = start_worker("db")
        waiter.join(90)
    assert answers, worker.output()
    assert answers[0].status_code == 200
    assert answers[0].json()["status"] == "DONE"
    assert answers[0].json()["id"] == job_id


def test_a_waiter_on_a_version_url_gets_done(api_server, start_worker):
    start_worker("db")
    with client(api_server) as http:
        job_id = submit(http, "/v3/ocr/jobs", {"pdfName": "sample.pdf", "workload": "noop"})
        answer = http.get(f"/v3/ocr/jobs/{job_id}", params={"wait": "60"})
    assert answer.status_code == 200 and answer.json()["status"] == "DONE"


def test_cancelling_a_job_ends_its_wait_with_cancelled(api_server):
    with client(api_server) as http:
        job_id = submit(http)
        answers = []
        waiter = threading.Thread(
            target=lambda: answers.append(http.get(f"/api/jobs/{job_id}", params={"wait": 60}))
        )
        waiter.start()
        assert services.job_cancel(job_id=job_id)
        waiter.join(90)
    assert answers and answers[0].json()["status"] == JobStatus.CANCELLED


def test_without_a_worker_the_wait_ends_with_the_current_state(api_server):
    with client(api_server) as http:
        job_id = submit(http)
        plain = http.get(f"/api/jobs/{job_id}").json()
        waited = http.get(f"/api/jobs/{job_id}", params={"wait": "0.5"})
    assert waited.status_code == 200
    assert waited.json()["status"] in (JobStatus.PENDING, JobStatus.QUEUED)
    assert set(waited.json()) == set(plain)  # the same JSON as without wait


@pytest.mark.parametrize("value", ["0", "-1", "61", "abc", "", "nan", "inf"])
def test_bad_wait_values_are_a_400(api_server, value):
    with client(api_server) as http:
        job_id = submit(http)
        answer = http.get(f"/api/jobs/{job_id}", params={"wait": value})
    assert answer.status_code == 400
    assert "0 < wait <= 60" in answer.json()["wait"][0]


def test_without_a_token_a_wait_is_a_401_at_once(api_server):
    with client(api_server) as http:
        job_id = submit(http)
    assert httpx.get(f"{api_server}/api/jobs/{job_id}", params={"wait": 30}).status_code == 401


def test_an_unknown_job_is_a_404_with_or_without_wait(api_server):
    with client(api_server) as http:
        assert http.get(f"/api/jobs/{UNKNOWN_ID}", params={"wait": 5}).status_code == 404
        assert http.get(f"/v3/ocr/jobs/{UNKNOWN_ID}", params={"wait": 5}).status_code == 404


def test_a_finished_job_answers_at_once_without_a_listener_round(api_server, start_worker):
    start_worker("db")
    with client(api_server) as http:
        job_id = submit(http)
        first = http.get(f"/api/jobs/{job_id}", params={"wait": 60}).json()
        again = http.get(f"/api/jobs/{job_id}", params={"wait": 60}).json()
    assert first["status"] == again["status"] == "DONE"


async def wait_all(base_url: str, ids: list[str], wait_s: float) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(ids))
    async with httpx.AsyncClient(
        base_url=base_url, timeout=120, limits=limits, headers=api_auth_headers()
    ) as http:
        return await asyncio.gather(
            *(http.get(f"/api/jobs/{job_id}", params={"wait": wait_s}) for job_id in ids)
        )


def test_concurrent_waiters_stay_inside_the_connection_budget(api_server):
    """50 waiters on jobs that never finish (no worker): every one answers after its
    timeout, and the API's connections never exceed 2 x (pool + 1 LISTEN)."""
    with client(api_server) as http:
        ids = [submit(http) for _ in range(WAITERS)]
    connection.close()
    connection.close_pool()  # earlier tests may have grown this process's own pool
    sampler = ConnectionSampler(connection.settings_dict["NAME"])
    sampler.start()
    try:
        answers = asyncio.run(wait_all(api_server, ids, 2))
    finally:
        sampler.stop.set()
        sampler.join()
    assert [a.status_code for a in answers] == [200] * WAITERS
    assert {a.json()["status"] for a in answers} <= {JobStatus.PENDING, JobStatus.QUEUED}
    assert sampler.counts and max(sampler.counts) <= connection_budget(), sampler.counts


def test_the_listener_comes_back_after_its_connection_is_killed(api_server, start_worker):
    """A LISTEN connection dropped (as when PostgreSQL restarts) reconnects; waiters still
    get their job's end."""
    with client(api_server) as http:
        submit(http)  # one wait starts each API process's listener
        http.get(f"/api/jobs/{submit(http)}", params={"wait": 0.2})
        wait_for(lambda: listener_pids(), 30, message="a LISTEN connection")
        with connection.cursor() as cursor:
            for pid in listener_pids():
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        job_id = submit(http)
        start_worker("db")
        answer = http.get(f"/api/jobs/{job_id}", params={"wait": 60})
    assert answer.status_code == 200 and answer.json()["status"] == "DONE"
    wait_for(lambda: listener_pids(), 30, message="the listener to reconnect")


def listener_pids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            [connection.settings_dict["NAME"], waiting.LISTENER_APP_NAME],
        )
        return [row[0] for row in cursor.fetchall()]


def test_finishing_a_job_notifies_its_channel():
    job = services.job_create(version="api", backend="db", document="sample.pdf", publish=False)
    claimed = services.job_claim(job_id=job.id, worker="test")
    with psycopg.connect(waiting.listener_conninfo(), autocommit=True) as listener:
        listener.execute(f'LISTEN "{services.finished_channel()}"')
        services.job_succeed(job_id=job.id, claim=claimed.claim_token, result=services.JobResult())
        notes = list(listener.notifies(timeout=10, stop_after=1))
    assert [n.payload for n in notes] == [str(job.id)]


def test_the_wsgi_test_client_falls_back_to_re_reading(api_client):
    job_id = api_client.post("/api/jobs", BODY, "application/json").json()["id"]  # no worker
    answer = api_client.get(f"/api/jobs/{job_id}", {"wait": "0.3"})
    assert answer.status_code == 200
    assert answer.json()["status"] in (JobStatus.PENDING, JobStatus.QUEUED)
    assert services.job_cancel(job_id=job_id)
    assert api_client.get(f"/api/jobs/{job_id}", {"wait": "30"}).json()["status"] == "CANCELLED"
    assert api_client.get(f"/api/jobs/{job_id}", {"wait": "61"}).status_code == 400
