"""V3: the `OcrJob` table is the queue (Postgres, SKIP LOCKED, LISTEN/NOTIFY, leases).

A worker claims the oldest ready row with `SELECT ... FOR UPDATE SKIP LOCKED` in a short
transaction (so concurrent workers never wait on each other), runs the work outside it,
and sleeps on LISTEN between jobs; `publish` sends NOTIFY so an idle worker wakes at once.
Polling every POLL_FALLBACK_S covers a lost notification. A killed worker's row keeps
status RUNNING until its lease runs out; the relay then puts it back (services).
"""

import logging
import threading
from uuid import UUID

import psycopg
from django.conf import settings
from django.db import connection

from apps.jobs import services
from tasks.backends.base import Backend, Handler

log = logging.getLogger(__name__)
POLL_FALLBACK_S = 1.0


class DatabaseBackend(Backend):
    row_is_message = True

    @property
    def channel(self) -> str:
        return f"{settings.QUEUE_PREFIX}_jobs".replace("-", "_")

    def publish(self, job_id: UUID) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [self.channel, str(job_id)])

    def consume(self, handle: Handler, *, stop: threading.Event) -> None:
        worker = services.worker_name()
        with psycopg.connect(settings.DATABASE_URL, autocommit=True) as listener:
            listener.execute(f'LISTEN "{self.channel}"')
            while not stop.is_set():
                job = services.job_claim_next(backend=self.alias, worker=worker)
                if job is not None:
                    handle(job.id, claimed=job)
                    continue
                for _ in listener.notifies(timeout=POLL_FALLBACK_S, stop_after=1):
                    pass

    def purge(self) -> None:
        from apps.jobs.models import READY, OcrJob

        OcrJob.objects.filter(backend=self.alias, status__in=READY).delete()
