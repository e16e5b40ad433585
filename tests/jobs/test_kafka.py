"""Kafka specifics on the real broker (Tansu locally, `scripts/tansu.sh start`).

In-process, without the database: `handle` is a fake that records what it got. Each
consume joins the group first, which takes Tansu about half the session timeout.
"""

import threading
import time

import pytest
from django.conf import settings

from tasks.backends.base import BackendUnavailable
from tasks.backends.kafka import KafkaBackend
from tasks.consume import consume_loop

ALIAS = "kafka-unit"
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

    def handle(job_id: str) -> str:
        seen.append(job_id)
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
