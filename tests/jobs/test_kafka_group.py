"""Kafka consumer-group care (tasks/backends/kafka_group.py): the watchdog's decision,
the join-time log line, the repair of a group Tansu left wedged, and poison messages.

The broker tests wedge their own group (names carry the test's queue prefix) the way
Tansu 0.6 does it: a member leaves while the group is rebalancing and stays its leader.
"""

import logging
import time
import uuid

import pytest
from django.conf import settings

from apps.jobs import services
from apps.jobs.models import OcrJob
from tasks.backends import kafka_group as kg
from tasks.backends.kafka import KafkaBackend
from tasks.backends.registry import get_backend, reset_backends
from tests.conftest import wait_for

ALIAS = "kafka-group"
SESSION_MS = 3000  # short, so the watchdog acts within a few seconds
JOIN_TIMEOUT_S = 30
POISON = [b"\xff\xfe\x00 not utf-8", b"not-a-uuid", b"", None]  # None: a null value
UNKNOWN_JOB = str(uuid.UUID(int=0x0C4A05)).encode()  # names no job: acked, skipped
NOOP_JOBS = 10


def test_watch_waits_for_the_limit_while_unassigned():
    watch = kg.AssignmentWatch(limit_s=10, now=100)
    assert not watch.observe(partitions=0, now=105)
    assert not watch.observe(partitions=0, now=110)
    assert watch.observe(partitions=0, now=110.5)


def test_watch_forgets_the_wait_once_assigned():
    watch = kg.AssignmentWatch(limit_s=10, now=100)
    assert not watch.observe(partitions=2, now=104)
    assert watch.joined_s == 4
    assert not watch.observe(partitions=0, now=113)  # unassigned since 113, not 100
    assert watch.observe(partitions=0, now=123.5)
    watch.restart(124)
    assert watch.joined_s is None
    assert not watch.observe(partitions=0, now=130)


def test_watch_snoozed_waits_the_limit_again_and_keeps_the_join_time():
    watch = kg.AssignmentWatch(limit_s=10, now=100)
    assert not watch.observe(partitions=1, now=103)
    assert not watch.observe(partitions=0, now=104)
    assert watch.observe(partitions=0, now=115)
    watch.snooze(116)
    assert not watch.observe(partitions=0, now=125)
    assert watch.observe(partitions=0, now=126.5)
    assert watch.joined_s == 3


def test_watchdog_limit_is_two_to_two_and_a_half_sessions():
    limits = [kg.watchdog_limit_s(6000) for _ in range(50)]
    assert all(12 <= limit <= 15 for limit in limits)


def test_join_times_reads_the_joined_lines():
    lines = [kg.JOINED % (3.14, 4, "t", "m1"), "other line", kg.JOINED % (12.0, 8, "t", "m2")]
    assert kg.join_times("\n".join(lines)) == [3.1, 12.0]


@pytest.fixture
def backend(settings):
    settings.KAFKA_SESSION_TIMEOUT_MS = SESSION_MS
    impl = KafkaBackend(ALIAS)
    impl.purge()
    yield impl
    impl.close()
    admin = impl._admin()  # kept: a collected client cancels its futures
    admin.delete_topics([impl.topic])[impl.topic].result(10)


def poll_until(consumer, predicate, timeout_s: float = JOIN_TIMEOUT_S, others=()) -> list[str]:
    """Poll `consumer` (a TopicConsumer), acking what comes, until predicate(consumer,
    seen) holds; return `seen`, the job ids it handed over. `others` are polled too
    (a member takes part in a rebalance only while it polls), their messages dropped."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate(consumer, seen):
        for other in others:
            other.receive(0.05)
        message = consumer.receive(0.2)
        if message is not None:
            seen.append(message.job_id)
            consumer.ack(message)
    assert predicate(consumer, seen), f"not reached in {timeout_s}s"
    return seen


def assigned(consumer, seen) -> bool:
    return bool(consumer.consumer.assignment())


def joined_and_got_one(consumer, seen) -> bool:
    return consumer.watch.joined_s is not None and len(seen) == 1


def wedge_with_no_members(impl) -> None:
    """Leader A, follower B, both assigned; B leaves (a rebalance starts), then A: Tansu
    keeps A as the leader of a group without members."""
    first = impl.open_consumer("first")
    poll_until(first, assigned)
    second = impl.open_consumer("second")
    poll_until(second, assigned, others=[first])
    poll_until(
        first,
        lambda c, _: len(c.consumer.assignment()) < settings.KAFKA_PARTITIONS,
        others=[second],
    )
    second.close()
    first.close()


def test_a_new_member_repairs_a_group_left_without_members(backend, caplog):
    wedge_with_no_members(backend)
    assert kg.group_wedged(backend._admin(), backend.group, empty_only=True)
    backend.publish("job-after")
    caplog.set_level(logging.INFO, logger="tasks.backends.kafka")
    consumer = backend.open_consumer("third")
    seen = poll_until(consumer, joined_and_got_one, timeout_s=20)
    consumer.close()
    assert seen == ["job-after"]
    assert "reset wedged group" in caplog.text
    assert kg.join_times(caplog.text)


def test_the_watchdog_rejoins_a_member_stuck_behind_a_departed_leader(backend, caplog):
    leader = backend.open_consumer("leader")
    poll_until(leader, assigned)
    backend.publish("job-waiting")
    follower = backend.open_consumer("follower")
    follower.receive(1.0)  # its JoinGroup is in: the group is rebalancing
    leader.close()  # leaves mid-rebalance: Tansu keeps it as the leader
    caplog.set_level(logging.INFO, logger="tasks.backends.kafka")
    limit_s = follower.watch.limit_s
    seen = poll_until(follower, joined_and_got_one, timeout_s=limit_s + 25)
    follower.close()
    assert seen == ["job-waiting"]
    assert "rejoining" in caplog.text
    assert "reset wedged group" in caplog.text


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_poison_messages_are_committed_past_and_counted(start_worker):
    """Undecodable bytes, a non-UUID, an unknown UUID and an empty value ahead of real
    jobs: every job finishes, every message is committed, the worker logs the poison."""
    impl = get_backend("kafka")
    impl.purge()
    worker = start_worker("kafka", workers=1, env={"KAFKA_BOOTSTRAP_SERVERS": impl.servers})
    producer = kg.ck.Producer({"bootstrap.servers": impl.servers, "linger.ms": 0})
    for payload in [*POISON, UNKNOWN_JOB]:
        producer.produce(impl.topic, key=b"poison", value=payload)  # all on one partition
    producer.flush(10)
    reset_backends()
    ids = [
        services.job_create(
            version="api", backend="kafka", document="sample.pdf", workload="noop"
        ).id
        for _ in range(NOOP_JOBS)
    ]
    wait_for(
        lambda: OcrJob.objects.filter(id__in=ids, status="DONE").count() == NOOP_JOBS,
        60,
        message=worker.output,
    )
    wait_for(lambda: group_lag(impl) == 0, 10, message=worker.output)  # all committed
    assert worker.output().count("poison message") == len(POISON)


def group_lag(impl) -> int:
    """Messages of the topic past the group's committed offsets."""
    probe = kg.ck.Consumer({"bootstrap.servers": impl.servers, "group.id": impl.group})
    try:
        return kg.topic_lag(probe, impl.topic)
    finally:
        probe.close()


def test_offsets_past_the_end_of_a_partition_start_it_from_the_beginning(backend):
    """Offsets that outlived their topic: Tansu does not answer OFFSET_OUT_OF_RANGE."""
    conf = {"bootstrap.servers": backend.servers, "group.id": backend.group}
    stale = [kg.ck.TopicPartition(backend.topic, p, 50) for p in range(settings.KAFKA_PARTITIONS)]
    assert kg.commit_offsets(conf, stale)
    backend.publish("job-new")
    consumer = backend.open_consumer("fresh")
    seen = poll_until(consumer, joined_and_got_one, timeout_s=20)
    consumer.close()
    assert seen == ["job-new"]
