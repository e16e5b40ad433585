"""Redis Streams specifics on a real Redis: take-over, dead letters, safe trimming, leaving.

In-process, without the database: `handle` is a fake that records what it got.
"""

import threading
import time

import pytest

from tasks.backends.base import Message
from tasks.backends.redis_streams import (
    DEAD_AFTER_DELIVERIES,
    DEAD_LETTERED,
    GROUP,
    RedisStreamsBackend,
    StreamWorker,
)
from tasks.consume import consume_loop

ALIAS = "redis-unit"


@pytest.fixture
def backend():
    impl = RedisStreamsBackend(ALIAS)
    impl.purge()
    impl.ensure_group()
    yield impl
    impl.purge()
    impl.close()


def consume_until(impl, count: int, name: str = "tester") -> list[str]:
    """Run one consumer until it has handled `count` entries; return their job ids."""
    seen: list[str] = []
    stop = threading.Event()

    def handle(message: Message) -> str:
        seen.append(message.job_id)
        if len(seen) >= count:
            stop.set()
        return "done"

    worker = StreamWorker(impl, name)
    thread = threading.Thread(target=consume_loop, args=(worker, handle), kwargs={"stop": stop})
    thread.start()
    thread.join(15)
    stop.set()
    thread.join(5)
    return seen


def leave_pending(impl, name: str = "ghost", *, deliveries: int = 1) -> str:
    """Deliver one entry to a consumer that then vanishes; make it look long idle."""
    r = impl.client
    (entry_id, _), *_ = r.xreadgroup(GROUP, name, {impl.stream: ">"}, count=1)[0][1]
    for _ in range(deliveries - 1):  # each XCLAIM counts as one more delivery
        r.xclaim(impl.stream, GROUP, name, 0, [entry_id])
    r.xclaim(impl.stream, GROUP, name, 0, [entry_id], idle=3_600_000, justid=True)
    return entry_id


def test_entries_are_acked_and_consumer_leaves_on_clean_stop(backend):
    backend.publish("job-1")
    backend.publish("job-2")
    assert consume_until(backend, 2) == ["job-1", "job-2"]
    assert backend.client.xpending(backend.stream, GROUP)["pending"] == 0
    assert backend.client.xinfo_consumers(backend.stream, GROUP) == []


def test_entry_of_a_dead_consumer_is_taken_over(backend):
    backend.publish("job-orphan")
    leave_pending(backend)
    assert consume_until(backend, 1) == ["job-orphan"]
    assert backend.client.xpending(backend.stream, GROUP)["pending"] == 0


def test_a_long_job_on_a_live_worker_is_not_taken_over(backend, settings):
    backend.publish("job-long")
    started, stop = threading.Event(), threading.Event()

    def handle(message: Message) -> str:
        started.set()
        time.sleep(settings.JOB_LEASE_S * 1.5)  # longer than the reclaim idle time
        stop.set()
        return "done"

    worker = StreamWorker(backend, "busy")
    thread = threading.Thread(target=consume_loop, args=(worker, handle), kwargs={"stop": stop})
    thread.start()
    assert started.wait(10)
    time.sleep(settings.JOB_LEASE_S * 1.2)
    assert StreamWorker(backend, "rival")._reclaim_one() is None
    thread.join(10)
    assert backend.client.xpending(backend.stream, GROUP)["pending"] == 0


def test_entry_delivered_too_often_goes_to_the_dead_stream(backend):
    backend.publish("job-poison")
    entry_id = leave_pending(backend, deliveries=DEAD_AFTER_DELIVERIES)
    backend.publish("job-next")
    assert consume_until(backend, 1) == ["job-next"]
    (dead_id, fields), *_ = backend.client.xrange(backend.dead_stream)
    assert fields["job_id"] == "job-poison" and fields["entry_id"] == entry_id
    assert backend.client.xpending(backend.stream, GROUP)["pending"] == 0


NOT_UTF8 = b"\xff\xfe\x00 not utf-8"


def test_an_undecodable_entry_is_dead_lettered_counted_and_passed_by_the_trim(backend):
    poison_id = backend.raw_client.xadd(backend.stream, {b"job_id": NOT_UTF8}).decode()
    backend.publish("job-after")
    before = DEAD_LETTERED["undecodable"]
    assert consume_until(backend, 1) == ["job-after"]
    assert DEAD_LETTERED["undecodable"] == before + 1
    r = backend.client
    assert r.xpending(backend.stream, GROUP)["pending"] == 0
    (_, fields), *_ = backend.raw_client.xrange(backend.dead_stream)
    assert fields[b"job_id"] == NOT_UTF8 and fields[b"entry_id"].decode() == poison_id
    group = next(g for g in r.xinfo_groups(backend.stream) if g["name"] == GROUP)
    assert group["last-delivered-id"] > poison_id  # the trim point (MINID) passes it


def test_an_undecodable_entry_left_by_a_dead_consumer_is_dead_lettered(backend):
    backend.raw_client.xadd(backend.stream, {b"job_id": NOT_UTF8})
    raw = backend.raw_client
    (entry_id, _), *_ = raw.xreadgroup(GROUP, "ghost", {backend.stream: ">"}, count=1)[0][1]
    raw.xclaim(backend.stream, GROUP, "ghost", 0, [entry_id], idle=3_600_000, justid=True)
    backend.publish("job-next")
    assert consume_until(backend, 1) == ["job-next"]
    assert backend.client.xpending(backend.stream, GROUP)["pending"] == 0
    assert backend.client.xlen(backend.dead_stream) == 1


def test_trim_keeps_every_pending_and_undelivered_entry(backend):
    r = backend.client
    ids = [r.xadd(backend.stream, {"job_id": f"job-{i}"}) for i in range(250)]
    delivered = r.xreadgroup(GROUP, "ghost", {backend.stream: ">"}, count=200)[0][1]
    r.xack(backend.stream, GROUP, *[eid for eid, _ in delivered if eid != ids[150]])
    StreamWorker(backend, "tester")._trim()
    kept = [eid for eid, _ in r.xrange(backend.stream)]
    assert len(kept) < 250  # the acked head went (whole nodes: trimming is approximate)
    assert kept[-100:] == ids[150:]


def test_purge_drops_entries_and_a_new_group_starts_at_the_beginning(backend):
    backend.publish("job-old")
    backend.purge()
    backend.publish("job-new")
    assert consume_until(backend, 1) == ["job-new"]


def test_publish_fails_fast_when_redis_is_down():
    impl = RedisStreamsBackend(ALIAS, {"url": "redis://127.0.0.1:1/0"})
    with pytest.raises(Exception, match="(?i)connect"):
        impl.publish("job-lost")
    impl.close()
