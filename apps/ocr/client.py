"""Calling OCR servers over HTTP: one shared client per process, and V2's balancer."""

import asyncio
import itertools
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from django.conf import settings

PREDICT_PATH = "/ocr/predict"
_sync_client: httpx.Client | None = None
_async_clients: dict[int, httpx.AsyncClient] = {}


@dataclass(frozen=True)
class CallOutcome:
    """What the API answers for one OCR server call: an HTTP status and a JSON body."""

    status: int
    body: dict
    server: str


def sync_client() -> httpx.Client:
    global _sync_client
    if _sync_client is None:
        _sync_client = httpx.Client()
    return _sync_client


def async_client() -> httpx.AsyncClient:
    """One AsyncClient per event loop (uvicorn runs one loop per worker process)."""
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _async_clients:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        _async_clients[loop_id] = httpx.AsyncClient(limits=limits)
    return _async_clients[loop_id]


def outcome_of(server: str, response: httpx.Response | Exception) -> CallOutcome:
    """Map a server answer, or the exception of a call that got none, to our answer."""
    if isinstance(response, httpx.TimeoutException):
        return CallOutcome(
            504,
            {
                "detail": f"OCR server {server} did not answer within "
                f"{settings.OCR_HTTP_TIMEOUT_S:g}s"
            },
            server,
        )
    if isinstance(response, Exception):
        return CallOutcome(
            503, {"detail": f"no OCR server answered ({server}): {response}"}, server
        )
    try:
        body = response.json()
    except ValueError:
        body = {"detail": f"OCR server {server} answered {response.status_code} without JSON"}
    if response.status_code >= 500:
        return CallOutcome(502, body, server)
    return CallOutcome(response.status_code, body, server)


def predict_sync(server: str, payload: dict) -> CallOutcome:
    try:
        response = sync_client().post(
            server + PREDICT_PATH, **payload, timeout=settings.OCR_HTTP_TIMEOUT_S
        )
    except httpx.HTTPError as exc:
        return outcome_of(server, exc)
    return outcome_of(server, response)


async def predict_async(server: str, payload: dict) -> CallOutcome:
    try:
        response = await async_client().post(
            server + PREDICT_PATH, **payload, timeout=settings.OCR_HTTP_TIMEOUT_S
        )
    except httpx.HTTPError as exc:
        return outcome_of(server, exc)
    return outcome_of(server, response)


class LeastOutstanding:
    """Pick the server with the fewest calls in flight from this process (ties: round robin).

    Counts are per API process; with several API processes each balances its own share,
    which is what a client-side balancer does.
    """

    def __init__(self, servers: list[str]):
        if not servers:
            raise ValueError("no OCR servers configured (OCR_SERVER_URLS)")
        self.servers = servers
        self.in_flight = dict.fromkeys(servers, 0)
        self._ties = itertools.cycle(range(len(servers)))

    def pick(self) -> str:
        offset = next(self._ties)
        order = self.servers[offset:] + self.servers[:offset]
        return min(order, key=self.in_flight.__getitem__)

    @asynccontextmanager
    async def lease(self):
        server = self.pick()
        self.in_flight[server] += 1
        try:
            yield server
        finally:
            self.in_flight[server] -= 1


_balancer: LeastOutstanding | None = None


def v2_balancer() -> LeastOutstanding:
    global _balancer
    if _balancer is None:
        _balancer = LeastOutstanding(settings.OCR_SERVER_URLS[: settings.OCR_V2_SERVERS])
    return _balancer
