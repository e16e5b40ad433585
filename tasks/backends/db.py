"""V3: the `OcrJob` table is the queue (Postgres, SKIP LOCKED, LISTEN/NOTIFY, leases).

A worker claims the oldest ready row with `SELECT ... FOR UPDATE SKIP LOCKED` in a short
transaction (so concurrent workers never wait on each other), runs the work outside it,
and sleeps on LISTEN between jobs; `publish` sends NOTIFY so an idle worker wakes at once.
Polling every POLL_FALLBACK_S covers a lost notification. A killed worker's row keeps
status RUNNING until its lease runs out; the relay then puts it back (services).
"""

import contextlib
import logging
from collections.abc import Callable
from uuid import UUID

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection

from apps.jobs import services
from apps.jobs.models import READY, OcrJob
from tasks.backends.base import Backend, Message
from tasks.backends.raw_table import TableRawQueue
from tasks.backends.services import Postgres, Service
from tasks.backends.timers import RedeliveryTimer, Tuning

log = logging.getLogger(__name__)
POLL_FALLBACK_S = 1.0


class DatabaseBackend(Backend):
    row_is_message = True
    supports_publish_raw = True  # a NOTIFY payload: any text
    client_packages = ("psycopg",)
    raw_note = "scratch table `bench_raw_queue` (SKIP LOCKED claim, DELETE ack, NOTIFY)"

    @property
    def channel(self) -> str:
        return f"{settings.QUEUE_PREFIX}_jobs".replace("-", "_")

    def publish(self, job_id: UUID) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [self.channel, str(job_id)])

    def hand_over(self, job_id: UUID, *, mark_queued: Callable[[], None]) -> None:
        """The row is the message: mark it QUEUED first, then NOTIFY. A worker woken while
        the UPDATE still held the row lock would skip the row (SKIP LOCKED), and the job
        would wait for the fallback poll (~1 s; 59 of 200 idle probes in the bench)."""
        mark_queued()
        try:
            self.publish(job_id)
        except Exception as exc:  # the row is QUEUED: a worker's fallback poll finds it
            log.warning("NOTIFY for job %s failed; workers will poll it: %s", job_id, exc)

    def publish_raw(self, payload: bytes) -> None:
        """NOTIFY with any payload (text without NUL bytes, as PostgreSQL needs)."""
        text = payload.decode("utf-8", "replace").replace("\x00", "")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [self.channel, text])

    def services(self) -> tuple[Service, ...]:
        return (Postgres(),)

    def open_consumer(self, worker: str) -> "TableConsumer":
        return TableConsumer(self, worker)

    def purge(self) -> None:
        OcrJob.objects.filter(backend=self.alias, status__in=READY).delete()

    def raw_queue(self) -> TableRawQueue:
        """The same table-queue design on a scratch table: the job row is this queue's
        message, so its raw twin needs a table of its own (tasks/backends/raw_table.py)."""
        return TableRawQueue(self.channel)

    def redelivery_timer(self, *, scaled_s: float) -> RedeliveryTimer:
        """The lease: past it the relay puts a RUNNING job back; renewal keeps it alive."""
        lease = {"JOB_LEASE_S": f"{scaled_s:g}"}
        return RedeliveryTimer(
            name="lease (JOB_LEASE_S)",
            owner="the job row (relay requeues an expired lease)",
            default=f"{settings.JOB_LEASE_S:g} s, renewed every third",
            defaults=Tuning(
                f"lease {scaled_s:g} s, no renewal", env={**lease, "JOB_LEASE_RENEWAL": "0"}
            ),
            lab=Tuning(f"lease {scaled_s:g} s, renewed every {scaled_s / 3:g} s", env=lease),
            log_signs=(r"relay \S+: \{'expired': [1-9]", r"no longer held|stale"),
        )


class TableConsumer:
    """Claim the oldest ready row; between rows, sleep on LISTEN. Survives a database
    restart: a failed claim or a dead listener connection is retried on the next receive."""

    def __init__(self, backend: DatabaseBackend, worker: str):
        self.backend, self.worker = backend, worker
        self.listener: psycopg.Connection | None = None

    def receive(self, timeout_s: float) -> Message | None:
        try:
            job = services.job_claim_next(backend=self.backend.alias, worker=self.worker)
        except DatabaseError:
            with contextlib.suppress(DatabaseError):
                connection.close()  # reconnect on the next claim
            raise
        if job is not None:
            return Message(job_id=str(job.id), claimed=job)
        self._wait(min(timeout_s, POLL_FALLBACK_S))
        return None

    def _wait(self, timeout_s: float) -> None:
        try:
            if self.listener is None or self.listener.closed:
                self.listener = psycopg.connect(settings.DATABASE_URL, autocommit=True)
                self.listener.execute(f'LISTEN "{self.backend.channel}"')
            for _ in self.listener.notifies(timeout=timeout_s, stop_after=1):
                pass
        except psycopg.Error:
            self.close()
            raise

    def ack(self, message: Message) -> None:
        """Nothing to do: the row is the message and process_job stored it."""

    def nack(self, message: Message) -> None:
        """Nothing to do: the row stays RUNNING until its lease runs out (relay)."""

    def close(self) -> None:
        if self.listener is not None:
            try:
                self.listener.close()
            finally:
                self.listener = None
