"""The Kafka backend's consumer-group care: the join-time log line, the no-assignment
watchdog, and the repair of a group that Tansu 0.6 (the local Kafka-protocol broker) left
wedged.

Join time: each consumer logs `kafka: joined group in N s, M partitions` when it first
holds partitions after it was opened; `join_times(log_text)` reads those lines back
(the bench prints them beside its kafka figures).

Watchdog: a member that has held no partition for longer than `WATCHDOG_SESSIONS` session
timeouts while its topic has lag is stuck (with partitions >= workers every member of a
formed group holds at least one), so it logs that, closes its consumer and opens a new
one. On Kafka a group never stays unformed that long. It keeps waiting only in a Stable
group with more members than partitions (a spare member). A Stable group with fewer
members whose member holds nothing formed while its topic was gone: Tansu restarted on
memory storage, the members rejoined (their member ids were unknown) before the relay's
publish recreated the topic, the leader assigned nothing, and librdkafka does not
rebalance when the topic reappears with the partition count its metadata cache still
remembers; without the rejoin the group would wait for good.

Tansu 0.6 wedge: its coordinator keeps a member as the group's leader when that member
leaves during a rebalance (two workers stopped together: the follower leaves first, then
the leader). Every later JoinGroup names the departed leader, whose SyncGroup never comes;
new members rejoin forever, until the group is deleted or Tansu restarts. Such a group
describes as not Stable yet naming a protocol (Tansu puts the leader's id there); Kafka
reports an empty protocol for every group that is not Stable, so `group_wedged` is never
true there. `reset_group` deletes the group and commits its offsets back, so nothing
finished is delivered again; Kafka refuses to delete a group that has members.

Offsets past the end: `assign_past_stale_offsets` starts a partition whose committed
offset lies beyond its high watermark at its beginning, as Kafka's OFFSET_OUT_OF_RANGE
would. Tansu 0.6 counts a multi-record batch as one record in its high watermark (a batch
of 4 at offset 0 reports 1), so the last batch of a partition, if it held several
records, may be delivered once more; the handler skips what is finished.
"""

import logging
import random
import re
import time
from collections.abc import Callable

from tasks.backends.base import require

ck = require("confluent_kafka", "confluent-kafka")
log = logging.getLogger("tasks.backends.kafka")

WATCHDOG_SESSIONS = 2  # no partition for this many session timeouts while lagging: rejoin
WATCHDOG_JITTER = 0.5  # up to this many more, so stuck members do not rejoin in step
REQUEST_TIMEOUT_S = 5.0
COMMIT_ATTEMPTS = 3
COMMIT_RETRY_S = 0.5
JOINED = "kafka: joined group in %.1f s, %d partitions (topic %s, member %s)"
JOINED_RE = re.compile(r"kafka: joined group in ([0-9.]+) s, (\d+) partitions")


def join_times(text: str) -> list[float]:
    """The join times (seconds from opening the consumer to its first partitions) that
    the `JOINED` lines in a worker log report."""
    return [float(match.group(1)) for match in JOINED_RE.finditer(text)]


def watchdog_limit_s(session_timeout_ms: int) -> float:
    """How long a member may hold no partition before the watchdog acts (with jitter)."""
    sessions = WATCHDOG_SESSIONS + random.uniform(0, WATCHDOG_JITTER)
    return sessions * session_timeout_ms / 1000


class AssignmentWatch:
    """Tracks since when a consumer has held no partition, and how long its join took."""

    def __init__(self, limit_s: float, now: float):
        self.limit_s = limit_s
        self.restart(now)

    def restart(self, now: float) -> None:
        """A new consumer was opened at `now`: it holds nothing yet."""
        self.opened_at = now
        self.unassigned_since: float | None = now
        self.joined_s: float | None = None

    def snooze(self, now: float) -> None:
        """Count the time without partitions from `now` again (the same consumer kept)."""
        self.unassigned_since = now

    def observe(self, *, partitions: int, now: float) -> bool:
        """Record what the consumer holds; True once it held nothing for over limit_s."""
        if partitions:
            if self.joined_s is None:
                self.joined_s = now - self.opened_at
            self.unassigned_since = None
            return False
        if self.unassigned_since is None:
            self.unassigned_since = now
        return now - self.unassigned_since > self.limit_s


def topic_lag(consumer, topic: str) -> int:
    """Messages in `topic` past the group's committed offsets (0 when unknown)."""
    try:
        meta = consumer.list_topics(topic, timeout=REQUEST_TIMEOUT_S).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        parts = [ck.TopicPartition(topic, p) for p in meta.partitions]
        lag = 0
        for tp in consumer.committed(parts, timeout=REQUEST_TIMEOUT_S):
            low, high = consumer.get_watermark_offsets(tp, timeout=REQUEST_TIMEOUT_S)
            lag += max(0, high - max(tp.offset, low))
        return lag
    except ck.KafkaException as exc:
        log.warning("kafka: cannot read the lag of %s: %s", topic, exc)
        return 0


def partition_count(consumer, topic: str) -> int:
    """How many partitions `topic` has (0 when it is missing or cannot be read)."""
    try:
        meta = consumer.list_topics(topic, timeout=REQUEST_TIMEOUT_S).topics.get(topic)
    except ck.KafkaException as exc:
        log.warning("kafka: cannot read the partitions of %s: %s", topic, exc)
        return 0
    return 0 if meta is None or meta.error is not None else len(meta.partitions)


def assign_past_stale_offsets(consumer, partitions: list) -> None:
    """The `on_assign` callback: start a partition whose committed offset lies beyond its
    end at its beginning, then take the partitions. Kafka answers a fetch beyond the end
    with OFFSET_OUT_OF_RANGE and librdkafka resets the position; Tansu 0.6 answers it
    with nothing, so a group whose offsets outlived its topic (a purge under live workers)
    would wait until new messages passed the old offset."""
    try:
        committed = consumer.committed(partitions, timeout=REQUEST_TIMEOUT_S)
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=REQUEST_TIMEOUT_S)
            if tp.offset > high:
                log.warning(
                    "kafka: committed offset %d of %s[%d] is past its end %d: from %d",
                    tp.offset,
                    tp.topic,
                    tp.partition,
                    high,
                    low,
                )
                tp.offset = low
            else:
                tp.offset = ck.OFFSET_INVALID  # the committed offset, as usual
        partitions = committed
    except ck.KafkaException as exc:
        log.warning("kafka: cannot check the committed offsets: %s", exc)
    consumer.incremental_assign(partitions)


def describe_group(admin, group: str):
    """The group's description (state, protocol), or None when it cannot be read."""
    future = admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group]
    try:
        return future.result(REQUEST_TIMEOUT_S + 1)
    except ck.KafkaException as exc:
        log.warning("kafka: cannot describe group %s: %s", group, exc)
        return None


def group_stable(admin, group: str) -> bool:
    """True if `group` is Stable."""
    desc = describe_group(admin, group)
    return desc is not None and desc.state == ck.ConsumerGroupState.STABLE


def group_has_spare_members(admin, group: str, partitions: int) -> bool:
    """True if `group` is Stable with more members than its topic has `partitions`:
    there a member without partitions is a spare, and rejoining would only start a
    rebalance. A Stable group with no more members than partitions gives each member
    at least one; one that holds none was assigned from a topic that was missing when
    the group formed (Tansu restarted: the members rejoined before the relay recreated
    the topic), and librdkafka does not rebalance when the topic comes back with the
    partition count it had before."""
    desc = describe_group(admin, group)
    if desc is None or desc.state != ck.ConsumerGroupState.STABLE:
        return False
    return len(desc.members) > partitions


def group_wedged(admin, group: str, *, empty_only: bool) -> bool:
    """True if `group` is not Stable yet names a protocol (Tansu: a leader); with
    `empty_only`, only when it also has no members (nobody is joining right now)."""
    desc = describe_group(admin, group)
    if desc is None or desc.state == ck.ConsumerGroupState.STABLE or not desc.partition_assignor:
        return False
    return desc.state == ck.ConsumerGroupState.EMPTY or not empty_only


def committed_offsets(conf: dict, topic: str) -> list:
    """The group's committed offsets on `topic` (partitions without one left out)."""
    probe = ck.Consumer(conf)
    try:
        meta = probe.list_topics(topic, timeout=REQUEST_TIMEOUT_S).topics[topic]
        parts = [ck.TopicPartition(topic, p) for p in meta.partitions]
        return [tp for tp in probe.committed(parts, timeout=REQUEST_TIMEOUT_S) if tp.offset >= 0]
    finally:
        probe.close()


def commit_offsets(conf: dict, offsets: list) -> bool:
    """Commit `offsets` for the group of `conf` without joining it (a few attempts:
    Tansu may refuse the first commit to a group it has just deleted)."""
    committer = ck.Consumer(conf)
    try:
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                committer.commit(offsets=offsets, asynchronous=False)
                return True
            except ck.KafkaException as exc:
                log.warning("kafka: commit %d of kept offsets failed: %s", attempt + 1, exc)
                time.sleep(COMMIT_RETRY_S)
        return False
    finally:
        committer.close()


def reset_group(*, conf: dict, topic: str, delete: Callable[[], bool]) -> bool:
    """Delete the group of `conf` (`delete()`: True if deleted), then commit its offsets
    on `topic` back; True if it was deleted."""
    started = time.monotonic()
    offsets = committed_offsets(conf, topic)
    if not delete():
        return False
    kept = commit_offsets(conf, offsets) if offsets else True
    log.warning(
        "kafka: reset wedged group %s in %.1f s (%d committed offsets %s)",
        conf["group.id"],
        time.monotonic() - started,
        len(offsets),
        "kept" if kept else "lost: those messages come again and are skipped",
    )
    return True
