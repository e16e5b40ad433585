"""procrastinate's raw queue: task rows deferred on `<QUEUE_PREFIX>.raw.<alias>` (by the
twin backend, as the lab defers), fetched and finished with procrastinate's own SQL (the
`fetch_job` and `finish_job` queries its worker runs: SKIP LOCKED in
procrastinate_fetch_job_v2; the row deleted when done), without running a task or its
worker. An idle consumer sleeps on the NOTIFY of procrastinate's insert trigger."""

import psycopg
from django.conf import settings
from procrastinate import manager
from procrastinate import sql as queries
from psycopg import sql

from tasks.backends.base import Message, TwinRawQueue

DONE = "succeeded"


class ProcrastinateRawQueue(TwinRawQueue):
    """Deferred by the twin backend; consumed by RawJobFetcher."""

    def open_consumer(self, name: str) -> "RawJobFetcher":
        return RawJobFetcher(self.twin.queue)  # type: ignore[attr-defined]


class RawJobFetcher:
    """fetch_job / finish_job(delete) as a registered procrastinate worker."""

    def __init__(self, queue: str):
        self.queue = queue
        self.conn = psycopg.connect(settings.DATABASE_URL, autocommit=True)
        self.listener = psycopg.connect(settings.DATABASE_URL, autocommit=True)
        for channel in manager.get_channel_for_queues([queue]):
            self.listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        row = self.conn.execute(queries.queries["register_worker"]).fetchone()
        self.worker_id = row[0] if row else None

    def receive(self, timeout_s: float) -> Message | None:
        params = {"queues": [self.queue], "worker_id": self.worker_id}
        row = self.conn.execute(queries.queries["fetch_job"], params).fetchone()
        if row is not None and row[0] is not None:
            return Message(job_id=str(row[0]), token=row[0])
        for _ in self.listener.notifies(timeout=timeout_s, stop_after=1):
            pass
        return None

    def ack(self, message: Message) -> None:
        params = {"job_id": message.token, "status": DONE, "delete_job": True}
        self.conn.execute(queries.queries["finish_job"], params)

    def nack(self, message: Message) -> None:
        """Left `doing`: procrastinate's stalled-job sweep would retry it."""

    def close(self) -> None:
        try:
            if self.worker_id is not None:
                params = {"worker_id": self.worker_id}
                self.conn.execute(queries.queries["unregister_worker"], params)
        finally:
            self.conn.close()
            self.listener.close()
