"""The `db` backend's raw queue: a scratch table of noop messages, no job rows.

The job table queue's message is the job row, so the raw family measures the same design on
a table of its own (`bench_raw_queue`, made by `prepare`, dropped by `purge`): INSERT with
NOTIFY in one statement, a consumer claims the oldest row with SELECT ... FOR UPDATE SKIP
LOCKED in a transaction, acks by DELETE and COMMIT, and sleeps on LISTEN while it is empty.
"""

import psycopg
from django.conf import settings
from django.db import connection

from tasks.backends.base import Message

TABLE = "bench_raw_queue"
CLAIM_SQL = f"SELECT id FROM {TABLE} ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1"
INSERT_SQL = (
    f"WITH row AS (INSERT INTO {TABLE} (payload) VALUES ('noop') RETURNING id) "
    "SELECT pg_notify(%s, '') FROM row"
)


class TableRawQueue:
    """bench_raw_queue, its NOTIFY channel `<channel>_raw`."""

    def __init__(self, channel: str):
        self.channel = f"{channel}_raw"

    def prepare(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, payload text)"
            )
            cursor.execute(f"TRUNCATE {TABLE}")

    def publish(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(INSERT_SQL, [self.channel])

    def open_consumer(self, name: str) -> "TableRawConsumer":
        return TableRawConsumer(self.channel)

    def purge(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")

    def close(self) -> None:
        """Django's connection is the caller's."""


class TableRawConsumer:
    """Claim (SKIP LOCKED) in a transaction; ack = DELETE + COMMIT; LISTEN while empty."""

    def __init__(self, channel: str):
        self.conn = psycopg.connect(settings.DATABASE_URL)
        self.listener = psycopg.connect(settings.DATABASE_URL, autocommit=True)
        self.listener.execute(f'LISTEN "{channel}"')

    def receive(self, timeout_s: float) -> Message | None:
        row = self.conn.execute(CLAIM_SQL).fetchone()
        if row is not None:
            return Message(job_id=str(row[0]), token=row[0])
        self.conn.rollback()
        for _ in self.listener.notifies(timeout=timeout_s, stop_after=1):
            pass
        return None

    def ack(self, message: Message) -> None:
        self.conn.execute(f"DELETE FROM {TABLE} WHERE id = %s", [message.token])
        self.conn.commit()

    def nack(self, message: Message) -> None:
        self.conn.rollback()

    def close(self) -> None:
        self.conn.close()
        self.listener.close()
