"""The long-poll wait (`?wait=S` on a job's detail URL), woken by PostgreSQL NOTIFY.

One async LISTEN connection per API process (started lazily by the first wait, outside
the pool, reconnecting with backoff) hands the ids that `services._notify_finished` sends
to the waiting requests: a dict job id -> set of asyncio events. A waiter holds no
database connection and no running thread; it re-reads the job only when woken, at its
deadline, or every FALLBACK_REREAD_S while the listener is disconnected (so nobody hangs
when PostgreSQL restarts). Without an event loop of the server's own (WSGI, the test
client) there is no listener and the wait is a bounded sleep-and-re-read loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress

import psycopg
from django.db import connection
from psycopg import sql
from psycopg.conninfo import make_conninfo

from apps.jobs.services import finished_channel

log = logging.getLogger(__name__)

WAIT_MAX_S = 60.0
FALLBACK_REREAD_S = 1.0
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0
LISTENER_APP_NAME = "ocrlab-wait-listener"
LISTENER_CONNECT_TIMEOUT_S = 5


def parse_wait_s(raw: str | None) -> float | None:
    """The `wait` query parameter in seconds (None when absent); ValueError when invalid."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= WAIT_MAX_S:
        raise ValueError(f"wait must be a number of seconds, 0 < wait <= {WAIT_MAX_S:g}")
    return value


def listener_conninfo() -> str:
    """Connection string of the default database, for the LISTEN connection."""
    params = connection.settings_dict
    parts = {
        "dbname": params.get("NAME"),
        "user": params.get("USER"),
        "password": params.get("PASSWORD"),
        "host": params.get("HOST"),
        "port": str(params.get("PORT") or ""),
    }
    return make_conninfo(
        **{k: v for k, v in parts.items() if v},
        application_name=LISTENER_APP_NAME,
        connect_timeout=str(LISTENER_CONNECT_TIMEOUT_S),  # a half-up server never hangs it
    )


class FinishedListener:
    """LISTEN on the finished channel; wake every waiter of the job id in a notification."""

    def __init__(self, *, conninfo: str, channel: str):
        self.conninfo, self.channel = conninfo, channel
        self.waiters: dict[str, set[asyncio.Event]] = {}
        self.connected = asyncio.Event()
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        """Run the listener in the current event loop (again, if it ever stopped)."""
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set when `job_id` finishes (or the listener reconnects)."""
        event = asyncio.Event()
        self.waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            events = self.waiters.get(job_id, set())
            events.discard(event)
            if not events:
                self.waiters.pop(job_id, None)

    def wake(self, job_id: str) -> None:
        for event in self.waiters.get(job_id, ()):
            event.set()

    def wake_all(self) -> None:
        """After a (re)connect: a job may have finished while nobody listened."""
        for events in self.waiters.values():
            for event in events:
                event.set()

    async def _run(self) -> None:
        delay_s = RECONNECT_MIN_S
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL restarted, network, auth: retry later
                log.warning("wait listener disconnected (%s); retry in %gs", exc, delay_s)
            self.connected.clear()
            self.wake_all()  # waiters switch to re-reading every FALLBACK_REREAD_S
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RECONNECT_MAX_S)

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        async with conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self.connected.set()
            self.wake_all()
            async for note in conn.notifies():
                self.wake(note.payload)


_listeners: dict[asyncio.AbstractEventLoop, FinishedListener] = {}


def get_listener() -> FinishedListener:
    """This event loop's listener (one per API process), started on first use."""
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None:
        listener = FinishedListener(conninfo=listener_conninfo(), channel=finished_channel())
        _listeners[loop] = listener
    listener.start()
    return listener


async def wait_until(
    *,
    job_id: str,
    wait_s: float,
    read: Callable[[], Awaitable],
    finished: Callable[[object], bool],
    listener: FinishedListener | None,
):
    """Re-read until `finished(answer)` or `wait_s` passed; returns the last answer.

    Subscribes before the first re-read, so a finish between the caller's read and the
    subscription is seen by that re-read."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    with _subscription(listener, job_id) as event:
        answer = await read()
        while not finished(answer) and (left_s := deadline - loop.time()) > 0:
            live = listener is not None and listener.connected.is_set()
            await _wait_event(event, left_s if live else min(left_s, FALLBACK_REREAD_S))
            event.clear()
            answer = await read()
    return answer


@contextmanager
def _subscription(listener: FinishedListener | None, job_id: str) -> Iterator[asyncio.Event]:
    if listener is None:
        yield asyncio.Event()  # never set: the loop re-reads every FALLBACK_REREAD_S
        return
    with listener.subscribe(job_id) as event:
        yield event


async def _wait_event(event: asyncio.Event, timeout_s: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)
