"""The API under concurrent load (real uvicorn, real PostgreSQL): no 5xx, and the number of
database connections stays inside the budget the pool sets; a busy pool answers 503."""

import asyncio
import threading

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from psycopg_pool import PoolTimeout

from apps.jobs.models import OcrJob
from apps.ops.launch import API_WORKERS
from ocrproject.env import api_auth_headers

pytestmark = pytest.mark.django_db(transaction=True)
CLIENTS = 128
SUBMITS_PER_CLIENT = 2
API_PROCESSES = API_WORKERS
LISTENERS_PER_API = 1  # the long-poll wait's LISTEN connection, outside the pool
TEST_PROCESS_CONNECTIONS = 2  # this test's own connection (+ one spare)


def connection_budget() -> int:
    """Most connections the API and this test may hold to the test database."""
    per_api = settings.DB_POOL_MAX_SIZE + LISTENERS_PER_API
    return API_PROCESSES * per_api + TEST_PROCESS_CONNECTIONS


class ConnectionSampler(threading.Thread):
    """Counts backends connected to the test database (pg_stat_activity) until stopped."""

    def __init__(self, database: str):
        super().__init__(daemon=True)
        self.database, self.stop, self.counts = database, threading.Event(), []

    def run(self) -> None:
        url = settings.DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(url, autocommit=True) as conn:
            while not self.stop.wait(0.02):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.database]
                ).fetchone()
                self.counts.append(row[0])


async def submit_all(base_url: str) -> list[int]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    body = {"backend": "db", "pdfName": "sample.pdf", "workload": "noop", "tag": "load"}
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=120, headers=api_auth_headers()
    ) as client:

        async def one_client() -> list[int]:
            return [
                (await client.post("/api/jobs", json=body)).status_code
                for _ in range(SUBMITS_PER_CLIENT)
            ]

        results = await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
    return [code for codes in results for code in codes]


def test_concurrent_submits_get_no_5xx_and_bounded_connections(api_server, api_token):
    sampler = ConnectionSampler(connection.settings_dict["NAME"])
    sampler.start()
    try:
        codes = asyncio.run(submit_all(api_server))
    finally:
        sampler.stop.set()
        sampler.join()
    assert [code for code in codes if code >= 500] == []
    assert set(codes) == {202}
    assert OcrJob.objects.filter(run_tag="load").count() == CLIENTS * SUBMITS_PER_CLIENT
    assert sampler.counts and max(sampler.counts) <= connection_budget(), sampler.counts


def test_exhausted_pool_answers_503_with_retry_after(api_token):
    pool = connection.pool
    assert pool is not None, "DB_POOL is on by default"
    held, timeout = [], pool.timeout
    pool.timeout = 0.2
    try:
        while True:  # take every connection the pool can give
            held.append(pool.getconn(timeout=0.5))
    except PoolTimeout:
        pass
    responses = []
    try:
        # a new thread has no connection of its own: it must borrow one from the pool
        thread = threading.Thread(target=lambda: responses.append(submit_in_process()))
        thread.start()
        thread.join()
    finally:
        for conn in held:
            pool.putconn(conn)
        pool.timeout = timeout
    assert responses[0].status_code == 503, responses[0].content
    assert responses[0]["Retry-After"] == "1"
    assert responses[0].json()["code"] == "db_busy"


def submit_in_process():
    body = {"backend": "db", "pdfName": "sample.pdf", "workload": "noop"}
    try:
        client = Client(headers=api_auth_headers())
        return client.post("/api/jobs", body, content_type="application/json")
    finally:
        connection.close()


async def sync_calls(base_url: str, paths: list[str]) -> list[int]:
    body = {"pdfName": "sample.pdf", "tag": "sync-load"}
    async with httpx.AsyncClient(base_url=base_url, timeout=300, headers=api_auth_headers()) as c:
        responses = await asyncio.gather(*(c.post(path, json=body) for path in paths))
    return [r.status_code for r in responses]


def test_more_sync_calls_than_pool_connections_get_no_5xx(api_server, api_token):
    """V0 and V1 calls wait seconds on OCR: they must not hold a pooled connection
    meanwhile, or a burst larger than the pools (here 16 against 2 x 4) answers 503."""
    calls = 2 * API_PROCESSES * settings.DB_POOL_MAX_SIZE
    paths = ["/v0/ocr/sync", "/v1/ocr/sync"] * (calls // 2)
    codes = asyncio.run(sync_calls(api_server, paths))
    assert codes == [200] * len(paths)
    assert OcrJob.objects.filter(run_tag="sync-load", status="DONE").count() == len(paths)
