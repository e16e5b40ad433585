"""Kafka specifics on the real broker (Tansu locally, `scripts/tansu.sh start`).

In-process, without the database: `handle` is a fake that records what it got. Each
consume joins the group first, which takes Tansu about half the session timeout.
"""

import os
import subprocess
import threading
import time

import confluent_kafka
import pytest
from django.conf import settings

from apps.jobs import services
from apps.jobs.models import OcrJob
from tasks.backends import kafka_group as kg
from tasks.backends.base import BackendUnavailable, Message
from tasks.backends.kafka import KafkaBackend
from tasks.backends.registry import get_backend, reset_backends
from tasks.consume import consume_loop
from tests.conftest import ROOT, wait_for

ALIAS = "kafka-unit"
CYCLES = 4
PUBLISH_ATTEMPTS = 4  # the relay retries a failed publish; a rebuilt producer needs one
SESSION_MS = 3000  # short: the watchdog acts after 2-2.5 sessions
PRIVATE_PORT = 9095  # never 9092 (shared) nor 9093 (the chaos engineer's private one)
pytestmark = pytest.mark.slow


@pytest.fixture
def backend():
    impl = KafkaBackend(ALIAS)
    impl.purge()
    yield impl
    impl.close()
    admin = impl._admin()
    admin.delete_topics([impl.topic])[impl.topic].result(10)


def consume_until(impl, count: int, timeout_s: float = 30) -> list[str]:
    """Run one consumer until it has handled `count` messages; return their job ids."""
    seen: list[str] = []
    stop = threading.Event()

    def handle(message: Message) -> str:
        seen.append(message.job_id)
        if len(seen) >= count:
            stop.set()
        return "done"

    thread = threading.Thread(
        target=consume_loop, args=(impl.open_consumer("tester"), handle), kwargs={"stop": stop}
    )
    thread.start()
    thread.join(timeout_s)
    stop.set()
    thread.join(10)
    return seen


def test_topic_has_the_configured_partitions(backend):
    topics = backend._admin().list_topics(backend.topic, timeout=10).topics
    assert len(topics[backend.topic].partitions) == settings.KAFKA_PARTITIONS


def test_handled_messages_are_committed(backend):
    backend.publish("job-1")
    backend.publish("job-2")
    assert sorted(consume_until(backend, 2)) == ["job-1", "job-2"]
    assert committed_count(backend) == 2
    backend.publish("job-3")
    assert consume_until(backend, 1) == ["job-3"]


def committed_count(impl) -> int:
    """Messages the group has committed, summed over the partitions."""
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": impl.servers, "group.id": impl.group})
    try:
        parts = [TopicPartition(impl.topic, p) for p in range(settings.KAFKA_PARTITIONS)]
        return sum(max(tp.offset, 0) for tp in probe.committed(parts, timeout=10))
    finally:
        probe.close()


def test_purge_drops_waiting_messages(backend):
    backend.publish("job-old")
    backend.purge()
    backend.publish("job-new")
    assert consume_until(backend, 1) == ["job-new"]


def test_publish_raises_when_the_broker_is_unreachable():
    impl = KafkaBackend(ALIAS, {"url": "127.0.0.1:1"})
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        impl.publish("job-lost")
    assert time.monotonic() - started < 15
    impl.close()


@pytest.mark.django_db(transaction=True)
def test_jobs_finish_after_each_purge_with_new_workers(start_worker):
    """The bench's cycle: workers run jobs, stop, the topic is purged, new workers start
    and must get the new jobs (issue: cells stalled at warm-up after a purge)."""
    for cycle in range(CYCLES):
        get_backend("kafka").purge()
        worker = start_worker("kafka", workers=2)
        wait_until_done(submit_noop(4), f"cycle {cycle}", worker)
        worker.stop()


def wait_until_done(jobs, what: str, worker, timeout_s: float = 60) -> None:
    wait_for(
        lambda: finished(jobs),
        timeout_s,
        message=lambda: f"{what}: {statuses(jobs)} {offsets()}\n{worker.output()}",
    )


def submit_noop(count: int) -> list[OcrJob]:
    reset_backends()  # this process's producer: fresh, like a new API process's
    return [
        services.job_create(version="api", backend="kafka", document="sample.pdf", workload="noop")
        for _ in range(count)
    ]


def statuses(jobs) -> dict[str, int]:
    rows = list(OcrJob.objects.filter(id__in=[j.id for j in jobs]).values_list("status", flat=True))
    return {s: rows.count(s) for s in set(rows)}


def finished(jobs) -> bool:
    return statuses(jobs) == {"DONE": len(jobs)}


def offsets() -> str:
    """The group's committed offsets and the topic's watermarks, per partition."""
    from confluent_kafka import Consumer, TopicPartition

    impl = get_backend("kafka")
    probe = Consumer({"bootstrap.servers": impl.servers, "group.id": impl.group})
    try:
        parts = [TopicPartition(impl.topic, p) for p in range(settings.KAFKA_PARTITIONS)]
        committed = [tp.offset for tp in probe.committed(parts, timeout=10)]
        marks = [probe.get_watermark_offsets(tp, timeout=10) for tp in parts]
        return f"committed={committed} watermarks={marks}"
    finally:
        probe.close()


def tansu(action: str) -> None:
    """Start or stop the private Tansu on PRIVATE_PORT (scripts/tansu.sh, own pid file)."""
    env = {**os.environ, "KAFKA_PORT": str(PRIVATE_PORT)}
    subprocess.run(["scripts/tansu.sh", action], cwd=ROOT, env=env, check=True, timeout=60)


@pytest.fixture
def private_kafka(settings):
    """The `kafka` alias on a private Tansu that this test may restart."""
    url = f"127.0.0.1:{PRIVATE_PORT}"
    tansu("start")
    conf = settings.JOB_BACKENDS["kafka"]
    options = {**conf.get("OPTIONS", {}), "url": url}
    settings.JOB_BACKENDS = {**settings.JOB_BACKENDS, "kafka": {**conf, "OPTIONS": options}}
    settings.KAFKA_BOOTSTRAP_SERVERS = url
    reset_backends()
    yield {"KAFKA_BOOTSTRAP_SERVERS": url}
    reset_backends()
    tansu("stop")


@pytest.mark.django_db(transaction=True)
def test_jobs_finish_after_a_broker_restart(private_kafka, start_worker):
    """Tansu restarted (memory storage: topic, group, producer ids gone): the relay's
    producer and the workers' consumers must recover and finish new jobs."""
    get_backend("kafka").purge()
    worker = start_worker("kafka", workers=2, env=private_kafka)
    wait_until_done(submit_noop(4), "before the restart", worker)
    tansu("stop")
    during = submit_noop(2)  # publish fails: PENDING until the relay sends them again
    tansu("start")
    wait_until_done([*during, *submit_noop(4)], "after the restart", worker, timeout_s=90)


def test_publish_recovers_after_a_broker_restart(private_kafka):
    """The cached idempotent producer must not keep timing out once the broker is back."""
    impl = KafkaBackend(ALIAS)
    impl.publish("job-before")
    tansu("stop")
    tansu("start")
    failures = 0
    for attempt in range(PUBLISH_ATTEMPTS):
        try:
            impl.publish(f"job-after-{attempt}")
            break
        except BackendUnavailable:
            failures += 1
    impl.close()
    assert failures < PUBLISH_ATTEMPTS, "no publish succeeded after the restart"


def test_a_group_formed_while_the_topic_was_gone_takes_it_once_it_is_back(private_kafka, settings):
    """Tansu restarted: the member rejoins before anyone recreates the topic, so the
    group forms Stable with no partition. librdkafka does not rebalance when the topic
    comes back with the partition count it had before, so the watchdog must rejoin
    (chaos broker-restart / broker-down: jobs stuck for good)."""
    settings.KAFKA_SESSION_TIMEOUT_MS = SESSION_MS
    impl = KafkaBackend(ALIAS)
    impl.purge()
    consumer = impl.open_consumer("member")
    wait_polling(consumer, lambda: consumer.consumer.assignment(), "first assignment")
    tansu("stop")
    tansu("start")
    admin = impl._admin()  # kept: a collected client cancels its futures
    wait_polling(
        consumer,
        lambda: not consumer.consumer.assignment() and kg.group_stable(admin, impl.group),
        "a Stable group without partitions",
    )
    impl._recreate_topic()
    publish_with_retries(impl, "job-after")
    seen: list[str] = []
    wait_polling(
        consumer, lambda: seen, "the job sent after the restart", consumer.watch.limit_s + 20, seen
    )
    consumer.close()
    impl.close()
    assert seen == ["job-after"]


def wait_polling(consumer, done, what: str, timeout_s: float = 30, seen=None) -> None:
    """Poll `consumer` (acking what comes, into `seen`) until done() holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done():
        message = consumer.receive(0.2)
        if message is not None:
            consumer.ack(message)
            if seen is not None:
                seen.append(message.job_id)
    assert done(), f"{what}: not reached in {timeout_s:g} s"


def publish_with_retries(impl, job_id: str) -> None:
    """The relay's way: a publish that fails is sent again (a rebuilt producer)."""
    for attempt in range(PUBLISH_ATTEMPTS):
        try:
            impl.publish(job_id)
            return
        except BackendUnavailable:
            if attempt == PUBLISH_ATTEMPTS - 1:
                raise


class FatalProducer:
    """A producer after a fatal error (Tansu restarted: "Unknown Producer Id"): every
    produce() raises, as librdkafka's does until the producer is replaced."""

    def produce(self, *args, **kwargs):
        raise confluent_kafka.KafkaException(
            confluent_kafka.KafkaError(confluent_kafka.KafkaError._FATAL, "Local: Fatal error")
        )

    def purge(self):
        pass

    def flush(self, timeout=None):
        return 0


def test_a_fatal_producer_is_replaced_after_its_failed_publish(private_kafka):
    impl = KafkaBackend(ALIAS)
    impl.publish("job-before")  # the topic exists, a real producer is cached
    impl._producer = FatalProducer()
    with pytest.raises(BackendUnavailable, match="refused job"):
        impl.publish("job-fatal")
    assert impl._producer is None  # dropped: the next publish builds a new one
    impl.publish("job-after")
    impl.close()
