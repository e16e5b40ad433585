"""V6: a Kafka topic is the queue; a consumer group shares its partitions among workers.

`publish` produces `job_id` (key and value) to `<prefix>-jobs-<alias>`, created on first
use with `KAFKA_PARTITIONS` partitions, and waits for the broker's acknowledgement
(acks=all, idempotent producer), raising if it does not come: the job then stays PENDING
and the relay sends it again. Each worker process is one consumer of group
`<prefix>-workers-<alias>`: it polls one message, runs `handle`, and only then commits
that message's offset + 1 synchronously (no auto-commit). A worker killed mid-job leaves
the offset uncommitted, so after the rebalance the partition's new owner gets the message
again; duplicates (rebalances, relay republishes) are skipped by `process_job`.

Ordering caveat (head-of-line blocking): Kafka hands each partition to exactly one
consumer of the group, and a consumer reads a partition in order. A worker that owns
several partitions works through them one message at a time, so a job keyed to a busy
worker's partition waits behind that worker's current job even while other workers sit
idle. Keys are job ids (spread by hash), partitions >= workers keeps everyone busy on
average, but a long OCR job still delays the jobs queued behind it in its partition.
Kafka has no per-message ack: that is the price of using a log as a job queue.

Long jobs: the consumer does not poll while a job runs, so `max.poll.interval.ms` is set
above `JOB_TIME_LIMIT_S`; liveness is the session heartbeat of librdkafka's own thread
(`KAFKA_SESSION_TIMEOUT_MS`). A busy worker cannot take part in a rebalance (a worker
joins, restarts or dies) until its job ends. With the eager assignors every member gives
up its partitions and idles meanwhile; with `cooperative-sticky` (used here) members keep
what they own and only the partitions that move wait for the busy worker.

Purge deletes and recreates the topic. Tansu 0.6 does not implement DeleteRecords, and
its high watermark counts the last record *batch*, not the last record, so "commit the
group's offsets at the end" would redeliver part of the last batch there. Deleting the
topic drops the group's committed offsets on both Tansu and Kafka; on Kafka deletion is
asynchronous, so purge retries the create until the old topic is gone.
"""

import logging
import threading
import time
from uuid import UUID

from django.conf import settings

from tasks.backends.base import POLL_S, Backend, BackendUnavailable, Message, require

ck = require("confluent_kafka", "confluent-kafka")
ck_admin = require("confluent_kafka.admin", "confluent-kafka")
log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 5.0  # publish gives up after this: the relay retries later
ADMIN_TIMEOUT_S = 5.0
RECREATE_TIMEOUT_S = 60.0  # Kafka deletes topics asynchronously
POLL_INTERVAL_MARGIN_S = 60.0  # on top of the job time limit
CONNECT_TIMEOUT_MS = 2000
# Tansu 0.6 does not wake a waiting fetch when a record arrives, so pickup takes about
# half of fetch.wait.max.ms (librdkafka's default 500 ms: ~150-250 ms per job). Kafka
# answers at once; there a short wait only costs idle consumers a few empty fetches.
FETCH_WAIT_MS = 50


class KafkaBackend(Backend):
    def __init__(self, alias: str, options: dict | None = None, version: str = "api"):
        super().__init__(alias, options, version)
        self.servers = self.options.get("url") or settings.KAFKA_BOOTSTRAP_SERVERS
        self._producer = None
        self._topic_ready = False
        self._lock = threading.Lock()

    @property
    def topic(self) -> str:
        return f"{settings.QUEUE_PREFIX}-jobs-{self.alias}"

    @property
    def group(self) -> str:
        return f"{settings.QUEUE_PREFIX}-workers-{self.alias}"

    def _common(self) -> dict:
        return {
            "bootstrap.servers": self.servers,
            "socket.connection.setup.timeout.ms": CONNECT_TIMEOUT_MS,
            "logger": log,  # librdkafka's own log lines go through Django's logging
        }

    def publish(self, job_id: UUID) -> None:
        """Produce one message and wait for its delivery report; raise if not delivered."""
        self.ensure_topic()
        report: list = []
        key = str(job_id).encode()
        producer = self._get_producer()
        producer.produce(
            self.topic, key=key, value=key, on_delivery=lambda err, msg: report.append(err)
        )
        producer.flush(DELIVERY_TIMEOUT_S + 1)
        if not report or report[0] is not None:
            self._topic_ready = False  # e.g. purged by another process: create it again
            reason = report[0] if report else "no delivery report in time"
            raise BackendUnavailable(f"Kafka at {self.servers} did not take job {job_id}: {reason}")

    def _get_producer(self):
        with self._lock:
            if self._producer is None:
                self._producer = ck.Producer(
                    {
                        **self._common(),
                        "acks": "all",
                        "enable.idempotence": True,  # Tansu 0.6 supports InitProducerId
                        "linger.ms": 0,
                        # else a broker that lost the topic (Tansu restarted) makes one
                        # with its default partition count; publish fails, then recreates
                        "allow.auto.create.topics": False,
                        "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000),
                    }
                )
            return self._producer

    def open_consumer(self, worker: str) -> "TopicConsumer":
        """A member `worker` of the group: poll one message, commit it after handling."""
        self.ensure_topic()
        consumer = ck.Consumer(self._consumer_config(worker))
        consumer.subscribe([self.topic])
        log.info("consuming topic %s in group %s", self.topic, self.group)
        return TopicConsumer(consumer, self.topic)

    def _consumer_config(self, worker: str) -> dict:
        return {
            **self._common(),
            "group.id": self.group,
            "client.id": worker,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "fetch.wait.max.ms": int(self.options.get("fetch_wait_ms", FETCH_WAIT_MS)),
            "session.timeout.ms": settings.KAFKA_SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": max(100, settings.KAFKA_SESSION_TIMEOUT_MS // 3),
            "max.poll.interval.ms": int(
                (settings.JOB_TIME_LIMIT_S + POLL_INTERVAL_MARGIN_S) * 1000
            ),
        }

    def ensure_topic(self) -> None:
        """Create the topic with KAFKA_PARTITIONS partitions unless it exists."""
        if self._topic_ready:
            return
        self._create_topic()
        self._topic_ready = True

    def _admin(self):
        return ck_admin.AdminClient(self._common())

    def _create_topic(self) -> bool:
        """True if created, False if it already existed (or is still being deleted)."""
        topic = ck_admin.NewTopic(self.topic, num_partitions=settings.KAFKA_PARTITIONS)
        admin = self._admin()  # keep a reference: a collected client cancels its futures
        future = admin.create_topics([topic], request_timeout=ADMIN_TIMEOUT_S)
        try:
            future[self.topic].result(ADMIN_TIMEOUT_S + 1)
        except ck.KafkaException as exc:
            if exc.args[0].code() == ck.KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            raise BackendUnavailable(
                f"cannot create topic {self.topic} on {self.servers}: {exc}"
            ) from exc
        return True

    def purge(self) -> None:
        """Delete and recreate the topic: its messages and the group's offsets go."""
        admin = self._admin()
        future = admin.delete_topics([self.topic], request_timeout=ADMIN_TIMEOUT_S)
        try:
            future[self.topic].result(ADMIN_TIMEOUT_S + 1)
        except ck.KafkaException as exc:
            if exc.args[0].code() != ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
        deadline = time.monotonic() + RECREATE_TIMEOUT_S
        while not self._create_topic():
            if time.monotonic() > deadline:
                raise BackendUnavailable(f"topic {self.topic} still exists after purge")
            time.sleep(0.5)
        self._topic_ready = True

    def close(self) -> None:
        """Deliver what the producer still holds, then drop it."""
        with self._lock:
            if self._producer is not None:
                self._producer.flush(DELIVERY_TIMEOUT_S)
                self._producer = None
        self._topic_ready = False


class TopicConsumer:
    """One consumer of the group: any value is handed on (a value that is no job id is
    poison: the handler drops it and it is committed like any other)."""

    def __init__(self, consumer, topic: str):
        self.consumer, self.topic = consumer, topic

    def receive(self, timeout_s: float = POLL_S) -> Message | None:
        msg = self.consumer.poll(timeout_s)
        if msg is None:
            return None
        if msg.error():
            log.warning("consumer error on %s: %s", self.topic, msg.error())
            return None
        raw = (msg.value() or b"").decode("utf-8", errors="replace")
        return Message(job_id=raw, token=msg)

    def ack(self, message: Message) -> None:
        """Commit offset + 1 synchronously. A failed commit (rebalanced meanwhile) is
        logged: the partition's new owner gets the message again and skips it."""
        msg = message.token
        try:
            self.consumer.commit(message=msg, asynchronous=False)
        except ck.KafkaException as exc:
            log.warning("commit of %s failed: %s", _where(msg), exc)

    def nack(self, message: Message) -> None:
        """Seek back to the message, so the next poll delivers it again."""
        msg = message.token
        partition = ck.TopicPartition(msg.topic(), msg.partition(), msg.offset())
        self.consumer.seek(partition)

    def close(self) -> None:
        self.consumer.close()  # leave the group now, not after the session timeout


def _where(msg) -> str:
    return f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
