"""The faults chaos injects, one at a time, while jobs are in flight.

Each fault is `inject(ctx) -> notes`; it returns once the fault is over (the process
resumed, the service back up). `applies(backend)` says why a fault does not apply, if so.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import confluent_kafka as ck
import redis
from django.conf import settings
from django.db import connection

from apps.bench.chaos.local import Postgres, broker_kind, broker_service
from tasks.backends.celery.app import TASK_NAME
from tasks.backends.dramatiq.broker import make_message
from tasks.backends.registry import get_backend

if TYPE_CHECKING:
    from apps.bench.chaos.scenario import CellRun

UNKNOWN_JOB = str(uuid.UUID(int=0x0C4A05))
POISON = {  # what a message may carry that names no job
    "garbage bytes": b"\xff\xfe\x00 not utf-8",
    "non-UUID": b"not-a-uuid",
    "unknown UUID": UNKNOWN_JOB.encode(),
}


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[CellRun], list[str]]
    needs_broker: bool = False
    description: str = ""
    scope: str = "worker"  # "worker": each backend's own; "broker"/"database": shared

    def applies(self, backend: str) -> str:
        """'' when the fault applies to `backend`, else why not."""
        if self.needs_broker and broker_url(backend) is None:
            return "n/a: the job row is the message (no broker); see postgres-restart"
        return ""


def broker_url(backend: str) -> str | None:
    return settings.JOB_BACKENDS[backend].get("OPTIONS", {}).get("url")


def _victim_pid(ctx: CellRun) -> int:
    job = ctx.wait_running()
    return int(job.worker.rsplit(":", 1)[1])


def sigkill(ctx: CellRun) -> list[str]:
    pid = _victim_pid(ctx)
    os.kill(pid, signal.SIGKILL)
    return [f"SIGKILL worker pid {pid} mid-job"]


def sigstop(ctx: CellRun) -> list[str]:
    pid = _victim_pid(ctx)
    pause_s = ctx.lease_s + ctx.pause_margin_s
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(pause_s)
    finally:
        os.kill(pid, signal.SIGCONT)
    return [f"SIGSTOP worker pid {pid} for {pause_s:g}s (lease {ctx.lease_s:g}s), then SIGCONT"]


def _restart(service, ctx: CellRun, what: str) -> list[str]:
    started = time.monotonic()
    service.stop()
    time.sleep(ctx.down_s)
    service.start()
    return [f"{what} down for {time.monotonic() - started:.1f}s"]


def broker_restart(ctx: CellRun) -> list[str]:
    url = broker_url(ctx.backend)
    assert url is not None  # needs_broker: applies() ruled out broker-less backends
    notes = _restart(broker_service(url, log_dir=ctx.log_dir), ctx, broker_kind(url))
    return notes + KIND_NOTES.get(broker_kind(url), [])


KIND_NOTES = {
    "redis": [
        "Redis keeps nothing on disk here: the restart drops the stream, its group "
        "and every pending entry; the job rows (the outbox) are the truth and the "
        "relay resends QUEUED jobs after RELAY_QUEUED_STALE_S"
    ],
    "kafka": [
        "Tansu keeps topics in memory: the restart drops the topic, its messages and "
        "the group's offsets; publish recreates the topic, the relay resends"
    ],
    "rabbit": ["stop_app/start_app: durable queues keep their persistent messages"],
}


def postgres_restart(ctx: CellRun) -> list[str]:
    return _restart(Postgres(settings.DATABASE_URL), ctx, "PostgreSQL")


def broker_down(ctx: CellRun) -> list[str]:
    """Stop the broker while the submitter keeps going, then start it again."""
    url = broker_url(ctx.backend)
    assert url is not None  # needs_broker: applies() ruled out broker-less backends
    service = broker_service(url, log_dir=ctx.log_dir)
    service.stop()
    before = ctx.submitted_count()
    time.sleep(ctx.down_s + ctx.pause_margin_s)
    during = ctx.submitted_count() - before
    service.start()
    return [f"{broker_kind(url)} down while {during} jobs were submitted"]


def poison(ctx: CellRun) -> list[str]:
    """Write messages that name no job with the broker's own client."""
    impl = get_backend(ctx.backend)
    writer = POISON_WRITERS.get(type(impl).__name__)
    if writer is None:
        return [f"no poison writer for {type(impl).__name__}"]
    writer(impl)
    return [f"wrote {len(POISON)} poison messages: {', '.join(POISON)}"]


def _poison_db(impl) -> None:
    with connection.cursor() as cursor:
        for payload in POISON.values():
            text = payload.decode("utf-8", "replace").replace("\x00", "")
            cursor.execute("SELECT pg_notify(%s, %s)", [impl.channel, text])


def _poison_redis(impl) -> None:
    impl.ensure_group()
    client = redis.Redis.from_url(impl.url)  # bytes as they are, no decoding
    for payload in POISON.values():
        client.xadd(impl.stream, {"job_id": payload})
    client.xadd(impl.stream, {"something": "else"})
    client.close()


def _poison_celery(impl) -> None:
    for payload in POISON.values():
        arg = payload.decode("utf-8", "replace")
        impl.app.send_task(TASK_NAME, args=[arg], queue=impl.queue, retry=False)
    with impl.app.connection_for_write() as conn:  # a body that is not a task at all
        conn.Producer().publish(
            POISON["garbage bytes"],
            routing_key=impl.queue,
            exchange="",
            content_type="application/octet-stream",
            content_encoding="binary",
            retry=False,
        )


def _poison_dramatiq(impl) -> None:
    """Dramatiq messages whose argument names no job, plus a body that is no message."""
    broker = impl.broker
    for payload in POISON.values():
        broker.enqueue(make_message(impl.alias, payload.decode("utf-8", "replace")))
    garbage = POISON["garbage bytes"]
    if type(broker).__name__ == "RabbitmqBroker":
        broker.declare_queue(impl.queue, ensure=True)
        broker.channel.basic_publish(exchange="", routing_key=impl.queue, body=garbage)
    else:  # RedisBroker: its own enqueue, minus the encoding
        broker.do_enqueue(impl.queue, str(uuid.uuid4()), garbage)


def _poison_kafka(impl) -> None:
    impl.ensure_topic()
    producer = ck.Producer({"bootstrap.servers": impl.servers, "linger.ms": 0})
    for payload in POISON.values():
        producer.produce(impl.topic, key=payload, value=payload)
    producer.produce(impl.topic, key=b"empty", value=b"")
    producer.flush(10)


POISON_WRITERS = {
    "DatabaseBackend": _poison_db,
    "RedisStreamsBackend": _poison_redis,
    "CeleryBackend": _poison_celery,
    "KafkaBackend": _poison_kafka,
    "DramatiqBackend": _poison_dramatiq,
}

# Least destructive first: a broker restart can leave a broker (Tansu) that the next
# phases' workers cannot use, so restarts and outages of the broker come last.
FAULTS = {
    fault.name: fault
    for fault in (
        Fault("sigkill", sigkill, description="SIGKILL of a worker mid-job"),
        Fault("sigstop", sigstop, description="SIGSTOP of a worker past its lease, SIGCONT"),
        Fault("poison", poison, description="messages that name no job"),
        Fault(
            "postgres-restart",
            postgres_restart,
            description="restart of PostgreSQL",
            scope="database",
        ),
        Fault("broker-restart", broker_restart, True, "restart of the broker mid-run", "broker"),
        Fault("broker-down", broker_down, True, "broker down while jobs are submitted", "broker"),
    )
}
