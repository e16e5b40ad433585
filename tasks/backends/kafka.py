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

Purge deletes the consumer group and the topic, then recreates the topic. Tansu 0.6 does
not implement DeleteRecords, and its high watermark counts the last record *batch*, not
the last record, so "commit the group's offsets at the end" would redeliver part of the
last batch there. Deleting the topic drops the group's committed offsets on both Tansu
and Kafka; on Kafka deletion is asynchronous, so purge retries the create until the old
topic is gone. The group goes too because Tansu can keep a stopped member as its leader
for good (see `_delete_group`). Purge is meant for stopped workers: a live librdkafka
2.x consumer whose topic is deleted and recreated under it can crash (SIGSEGV in its
metadata cache, seen on Tansu); the supervisor then restarts that worker.

Group care (tasks/backends/kafka_group.py): each consumer logs its join time; one that
holds no partition for 2-2.5 session timeouts while the topic has lag rejoins (unless it
is a spare: a Stable group with more members than partitions); a group
that Tansu left wedged (a departed member kept as leader) is deleted and its offsets
committed back, by a new member or by that watchdog.

Broker restart (Tansu on memory storage loses topics, groups and producer ids): a failed
delivery, or a produce() that raises (a producer turned fatal: "Unknown Producer Id"),
drops the producer, so the next publish builds a new one; a consumer told the
topic is unknown recreates it, and the relay republishes what was lost. Members that
rejoined (their ids unknown to the new broker) before the topic was back form a Stable
group with no partition assigned; librdkafka does not rebalance when the topic returns
with its old partition count, so the watchdog rejoins them once the topic has lag.
"""

import functools
import logging
import os
import threading
import time
from uuid import UUID

from django.conf import settings

from tasks.backends import kafka_group as kg
from tasks.backends.base import POLL_S, Backend, BackendUnavailable, Message, TwinRawQueue, require
from tasks.backends.services import Kafka, Service
from tasks.backends.timers import RedeliveryTimer, Tuning

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
MISSING_TOPIC = (ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError._UNKNOWN_TOPIC)
DEBUG = os.environ.get("OCRLAB_KAFKA_DEBUG", "")  # librdkafka contexts, e.g. "cgrp,fetch"


class KafkaBackend(Backend):
    supports_publish_raw = True
    client_packages = ("confluent-kafka",)
    raw_note = "topic `<prefix>-jobs-raw.<alias>`, the lab's TopicConsumer (poll, commit)"

    def __init__(self, alias: str, options: dict | None = None):
        super().__init__(alias, options)
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
        conf = {
            "bootstrap.servers": self.servers,
            "socket.connection.setup.timeout.ms": CONNECT_TIMEOUT_MS,
            "logger": log,  # librdkafka's own log lines go through Django's logging
        }
        if DEBUG:  # librdkafka's debug lines to stderr (the worker's log)
            conf.pop("logger")
            conf["debug"] = DEBUG
        return conf

    def publish(self, job_id: UUID) -> None:
        """Produce one message and wait for its delivery report; raise if not delivered."""
        self.ensure_topic()
        report: list = []
        key = str(job_id).encode()
        producer = self._get_producer()
        try:
            producer.produce(
                self.topic, key=key, value=key, on_delivery=lambda err, msg: report.append(err)
            )
            producer.flush(DELIVERY_TIMEOUT_S + 1)
        except (ck.KafkaException, BufferError) as exc:
            # A fatal producer (Tansu restarted: "Unknown Producer Id") refuses every
            # later produce() with "Local: Fatal error": only a new one can publish.
            self._drop_producer()
            raise BackendUnavailable(
                f"Kafka at {self.servers} refused job {job_id}: {exc}"
            ) from exc
        if not report or report[0] is not None:
            self._drop_producer()
            reason = report[0] if report else "no delivery report in time"
            raise BackendUnavailable(f"Kafka at {self.servers} did not take job {job_id}: {reason}")

    def publish_raw(self, payload: bytes) -> None:
        """Produce `payload` as key and value with a plain producer (no idempotence)."""
        self.ensure_topic()
        producer = ck.Producer({**self._common(), "linger.ms": 0})
        producer.produce(self.topic, key=payload or None, value=payload)
        if producer.flush(DELIVERY_TIMEOUT_S + 1):
            raise BackendUnavailable(f"Kafka at {self.servers} did not take a raw message")

    def services(self) -> tuple[Service, ...]:
        return (Kafka(self.servers),)

    def _drop_producer(self) -> None:
        """Forget the producer and the topic: the next publish builds both again. An
        idempotent producer whose broker restarted (Tansu: memory storage, producer ids
        and topics gone) times out every message until rebuilt; a purge by another
        process leaves it writing to a topic that is gone."""
        with self._lock:
            producer, self._producer = self._producer, None
            self._topic_ready = False
        if producer is not None:
            producer.purge()  # drop what it still holds: the relay sends those jobs again
            producer.flush(0)

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
        """A member `worker` of the group: poll one message, commit it after handling.
        A group that Tansu left wedged with no members is repaired first."""
        self.ensure_topic()
        self._repair_group(empty_only=True)
        log.info("consuming topic %s in group %s", self.topic, self.group)
        return TopicConsumer(
            self._subscribe(worker),
            self.topic,
            on_missing_topic=self._recreate_topic,
            reopen=functools.partial(self._reopen, worker),
            watch=kg.AssignmentWatch(
                kg.watchdog_limit_s(settings.KAFKA_SESSION_TIMEOUT_MS), time.monotonic()
            ),
        )

    def _subscribe(self, worker: str):
        consumer = ck.Consumer(self._consumer_config(worker))
        consumer.subscribe([self.topic], on_assign=kg.assign_past_stale_offsets)
        return consumer

    def _reopen(self, worker: str, consumer, idle_s: float):
        """For the watchdog: `consumer` held no partition for `idle_s` while the topic has
        lag. In a Stable group with more members than partitions it is a spare: keep it.
        Otherwise (a group still forming, wedged, or formed while the topic was missing)
        close it, repair the group if it is wedged, and join again."""
        partitions = kg.partition_count(consumer, self.topic)
        if kg.group_has_spare_members(self._admin(), self.group, partitions):
            log.info(
                "kafka: no partition for %.0f s in a stable group with more members than "
                "%d partitions: waiting",
                idle_s,
                partitions,
            )
            return consumer
        log.warning(
            "kafka: no partition of %s for %.0f s while it has lag: rejoining", self.topic, idle_s
        )
        consumer.close()
        self._repair_group(empty_only=False)
        return self._subscribe(worker)

    def _repair_group(self, *, empty_only: bool) -> None:
        admin = self._admin()
        try:
            if kg.group_wedged(admin, self.group, empty_only=empty_only):
                conf = {**self._common(), "group.id": self.group, "enable.auto.commit": False}
                delete = functools.partial(self._delete_group, admin)
                kg.reset_group(conf=conf, topic=self.topic, delete=delete)
        except (ck.KafkaException, BackendUnavailable) as exc:
            log.warning("kafka: cannot repair group %s: %s", self.group, exc)

    def _recreate_topic(self) -> None:
        """The broker lost the topic (restarted on memory storage): create it again, so
        that jobs the relay republishes have somewhere to go."""
        self._topic_ready = False
        try:
            self.ensure_topic()
        except BackendUnavailable as exc:
            log.warning("topic %s is missing and cannot be created yet: %s", self.topic, exc)

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
                self.options.get("max_poll_interval_ms", lab_max_poll_interval_ms())
            ),
        }

    def raw_queue(self) -> TwinRawQueue:
        """A topic and group of their own (`raw.<alias>`), read by the same TopicConsumer."""
        return TwinRawQueue(self)

    def redelivery_timer(self, *, scaled_s: float) -> RedeliveryTimer:
        """librdkafka's max.poll.interval.ms: a consumer that does not poll this long
        leaves the group; its partitions move and the uncommitted message is read again."""
        scaled_ms = max(int(scaled_s * 1000), settings.KAFKA_SESSION_TIMEOUT_MS)
        return RedeliveryTimer(
            name="max.poll.interval.ms",
            owner="librdkafka consumer",
            default="300000 ms (5 min)",
            defaults=Tuning(
                f"max.poll.interval.ms {scaled_ms}", options={"max_poll_interval_ms": scaled_ms}
            ),
            lab=Tuning(f"max.poll.interval.ms {lab_max_poll_interval_ms()} (time limit + 60 s)"),
            log_signs=(r"MAXPOLL", r"Commit failed: [^\"]+"),
        )

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
        """Delete the group and the topic, then recreate the topic: its messages, the
        group's offsets and its members go."""
        admin = self._admin()
        self._delete_group(admin)
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

    def _delete_group(self, admin) -> bool:
        """Delete the consumer group, so the next workers join a new one. On Tansu 0.6 a
        member that stopped (even with LeaveGroup) can stay the group's leader for good:
        every later JoinGroup names it, its SyncGroup never comes, and the new members
        rejoin with "rebalance in progress" forever. Kafka refuses to delete a group
        with live members (NON_EMPTY_GROUP): those keep it, as they should. True if
        the group was deleted."""
        future = admin.delete_consumer_groups([self.group], request_timeout=ADMIN_TIMEOUT_S)
        try:
            future[self.group].result(ADMIN_TIMEOUT_S + 1)
        except ck.KafkaException as exc:
            code = exc.args[0].code()
            if code == ck.KafkaError.NON_EMPTY_GROUP:
                log.warning("cannot delete group %s: it still has members", self.group)
            elif code != ck.KafkaError.GROUP_ID_NOT_FOUND:
                raise BackendUnavailable(f"cannot delete group {self.group}: {exc}") from exc
            return False
        return True

    def close(self) -> None:
        """Deliver what the producer still holds, then drop it."""
        with self._lock:
            if self._producer is not None:
                self._producer.flush(DELIVERY_TIMEOUT_S)
                self._producer = None
        self._topic_ready = False


def lab_max_poll_interval_ms() -> int:
    """Above the longest job: a consumer polls nothing while its job runs."""
    return int((settings.JOB_TIME_LIMIT_S + POLL_INTERVAL_MARGIN_S) * 1000)


class TopicConsumer:
    """One consumer of the group: any value is handed on (a value that is no job id is
    poison: the handler drops it and it is committed like any other). With `reopen`
    and `watch`, it logs its join time and rejoins when it stays without partitions
    (kafka_group: the watchdog)."""

    def __init__(self, consumer, topic: str, on_missing_topic=None, reopen=None, watch=None):
        self.consumer, self.topic = consumer, topic
        self.on_missing_topic = on_missing_topic
        self.reopen, self.watch = reopen, watch

    def receive(self, timeout_s: float = POLL_S) -> Message | None:
        msg = self.consumer.poll(timeout_s)
        if self.watch is not None:
            self._check_assignment()
        if msg is None:
            return None
        if msg.error():
            log.warning("consumer error on %s: %s", self.topic, msg.error())
            if msg.error().code() in MISSING_TOPIC and self.on_missing_topic:
                self.on_missing_topic()
            return None
        raw = (msg.value() or b"").decode("utf-8", errors="replace")
        return Message(job_id=raw, token=msg)

    def _check_assignment(self) -> None:
        """Log the join once; rejoin when the watch says this member is stuck."""
        joined = self.watch.joined_s
        partitions = len(self.consumer.assignment())
        overdue = self.watch.observe(partitions=partitions, now=time.monotonic())
        if joined is None and self.watch.joined_s is not None:
            member = self.consumer.memberid()
            log.info(kg.JOINED, self.watch.joined_s, partitions, self.topic, member)
        if overdue and self.reopen is not None and kg.topic_lag(self.consumer, self.topic):
            consumer, self.consumer = self.consumer, self.reopen(self.consumer, self.watch.limit_s)
            if self.consumer is consumer:
                self.watch.snooze(time.monotonic())
            else:
                self.watch.restart(time.monotonic())

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
