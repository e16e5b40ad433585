"""V4: a Redis stream with one consumer group is the queue.

`publish` XADDs an entry `{job_id}` to `<prefix>:jobs:<alias>`. Each worker process is a
consumer of group `workers` (named host:pid) and reads one entry at a time with
XREADGROUP; the entry stays in the group's pending list (PEL) until the worker XACKs it,
after `handle` has stored the job's result.

- Liveness: while a job runs, the worker re-claims its own entry (XCLAIM JUSTID) every
  third of `JOB_LEASE_S`, which resets the entry's idle time. So only the entries of dead
  consumers ever stay idle longer than `JOB_LEASE_S`; live workers take them over with
  XAUTOCLAIM. A taken-over entry whose job is still RUNNING under a live lease is skipped
  by `process_job` and acked; the relay requeues that job once its lease runs out.
- Poison entries: an entry delivered more than DEAD_AFTER_DELIVERIES times is moved to
  `<stream>:dead` and acked. The job row stays; its attempts and the relay still decide.
  Entries are read as bytes and decoded here: one whose fields are not UTF-8 is moved to
  the dead stream and acked at once (else it would stay pending for good, and so would
  the trim point). Each dead letter is logged and counted in `DEAD_LETTERED`.
- Trimming: never by MAXLEN at XADD time, which would silently drop entries not yet
  delivered when a backlog grows past the cap (the job would stay QUEUED forever, since
  the relay only resends PENDING and lease-expired jobs). Workers instead trim by MINID:
  everything older than both the oldest pending entry and the group's last-delivered id
  has been acked. The stream therefore holds only the backlog plus a little acked tail.
- Consumers: a worker deletes its consumer on a clean stop (when it holds no entries);
  consumers of killed workers are deleted once idle and empty for STALE_CONSUMER_S.
"""

import logging
import threading
import time
from collections import Counter
from uuid import UUID

from django.conf import settings

from tasks.backends.base import POLL_S, Backend, BackendUnavailable, Message, TwinRawQueue, require
from tasks.backends.services import Redis, Service
from tasks.backends.timers import RedeliveryTimer, Tuning

redis = require("redis", "redis")
log = logging.getLogger(__name__)

GROUP = "workers"
CONNECT_TIMEOUT_S = 2.0  # publish fails fast when Redis is down: the job stays PENDING
SOCKET_TIMEOUT_S = POLL_S + 10.0  # the reading client: must outlast the XREADGROUP block
COMMAND_TIMEOUT_S = 3.0  # every other command (publish, ack, upkeep): a hung Redis fails fast
DEAD_AFTER_DELIVERIES = 5
DEAD_MAXLEN = 10_000  # dead letters are diagnostics; the job rows keep the truth
STALE_CONSUMER_S = 600.0
# Dead-lettered entries of this process, by reason ("deliveries", "undecodable").
DEAD_LETTERED: Counter[str] = Counter()


class RedisStreamsBackend(Backend):
    supports_publish_raw = True
    client_packages = ("redis",)
    raw_note = "stream `<prefix>:jobs:raw.<alias>`, the lab's StreamWorker (XREADGROUP, XACK)"

    def __init__(self, alias: str, options: dict | None = None):
        super().__init__(alias, options)
        self.url = self.options.get("url") or settings.REDIS_URL
        self._client = None
        self._raw_client = None
        self._group_ready = False

    @property
    def stream(self) -> str:
        return f"{settings.QUEUE_PREFIX}:jobs:{self.alias}"

    @property
    def dead_stream(self) -> str:
        return f"{self.stream}:dead"

    @property
    def client(self):
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url,
                decode_responses=True,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=COMMAND_TIMEOUT_S,
                health_check_interval=30,
            )
        return self._client

    @property
    def raw_client(self):
        """Replies as bytes: workers read entries with it (the blocking XREADGROUP) and
        decode them themselves."""
        if self._raw_client is None:
            self._raw_client = redis.Redis.from_url(
                self.url,
                decode_responses=False,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S,
                health_check_interval=30,
            )
        return self._raw_client

    def ensure_group(self, *, force: bool = False) -> None:
        """Create the stream and its group; start at id 0 so nothing published before the
        first worker came up is skipped."""
        if self._group_ready and not force:
            return
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def publish(self, job_id: UUID) -> None:
        """XADD one entry naming the job; raises (redis.ConnectionError) if Redis is down."""
        self.ensure_group()
        self.client.xadd(self.stream, {"job_id": str(job_id)})

    def publish_raw(self, payload: bytes) -> None:
        """XADD an entry whose job_id field is `payload`, bytes as they are."""
        self.ensure_group()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=CONNECT_TIMEOUT_S)
        try:
            client.xadd(self.stream, {"job_id": payload})
        finally:
            client.close()

    def services(self) -> tuple[Service, ...]:
        return (Redis(self.url),)

    def open_consumer(self, worker: str) -> "StreamWorker":
        """A consumer of the group named `worker` (read, ack one entry at a time)."""
        try:
            self.ensure_group()
        except redis.ConnectionError as exc:
            raise BackendUnavailable(f"Redis at {self.url} does not answer: {exc}") from exc
        return StreamWorker(self, worker)

    def purge(self) -> None:
        """Delete the stream (and with it the group and its pending entries)."""
        self.client.delete(self.stream, self.dead_stream)
        self._group_ready = False

    def raw_queue(self) -> TwinRawQueue:
        """A stream of its own (`raw.<alias>`), read and acked by the same StreamWorker."""
        return TwinRawQueue(self)

    def redelivery_timer(self, *, scaled_s: float) -> RedeliveryTimer:
        """XAUTOCLAIM's min-idle time; the lab refreshes a running job's entry."""
        idle = {"claim_idle_s": scaled_s}
        return RedeliveryTimer(
            name="XAUTOCLAIM min-idle-time",
            owner="the consumer group's workers (this lab: JOB_LEASE_S)",
            default=f"{settings.JOB_LEASE_S:g} s (no refresh in a plain consumer group)",
            defaults=Tuning(
                f"min-idle {scaled_s:g} s, entry not refreshed",
                options={**idle, "refresh_pending": False},
            ),
            lab=Tuning(
                f"min-idle {scaled_s:g} s, entry refreshed every {scaled_s / 3:g} s (XCLAIM)",
                options=idle,
            ),
            log_signs=(r"took over entry",),
        )

    def close(self) -> None:
        """Close this process's connection pool."""
        for client in (self._client, self._raw_client):
            if client is not None:
                client.close()
        self._client = self._raw_client = None
        self._group_ready = False


class StreamWorker:
    """One consumer of the group (a tasks/consume Consumer) and its upkeep (reclaim,
    trim). While an entry is being handled, a thread keeps it fresh until ack or nack."""

    def __init__(self, backend: RedisStreamsBackend, name: str):
        self.backend, self.name = backend, name
        self.r, self.stream = backend.client, backend.stream
        self.raw = backend.raw_client  # entries as bytes: decoding is ours (poison)
        idle_s = float(backend.options.get("claim_idle_s", settings.JOB_LEASE_S))
        self.min_idle_ms = int(idle_s * 1000)
        self.upkeep_every_s = idle_s / 3
        self.refresh = bool(backend.options.get("refresh_pending", True))
        self.next_upkeep = 0.0
        self.cursor = "0-0"
        log.info("consuming stream %s as %s", self.stream, self.name)

    def receive(self, timeout_s: float = POLL_S) -> Message | None:
        entry = self._next(timeout_s)
        if entry is None:
            return None
        entry_id, fields = entry
        done = threading.Event()
        thread = threading.Thread(
            target=self._touch, args=(entry_id, done), name=f"touch-{entry_id}", daemon=True
        )
        if self.refresh:  # off only to measure what XAUTOCLAIM does to a long job
            thread.start()
        return Message(job_id=fields.get("job_id") or "", token=(entry_id, done, thread))

    def ack(self, message: Message) -> None:
        entry_id = self._release(message)
        self.r.xack(self.stream, GROUP, entry_id)

    def nack(self, message: Message) -> None:
        """Leave the entry pending: it goes idle and is taken over (XAUTOCLAIM)."""
        self._release(message)

    def close(self) -> None:
        self._leave()

    def _release(self, message: Message) -> str:
        entry_id, done, thread = message.token
        done.set()
        if thread.is_alive():
            thread.join()
        return entry_id

    def _touch(self, entry_id: str, done: threading.Event) -> None:
        """Reset the entry's idle time while the job runs, so no one takes it over."""
        while not done.wait(self.upkeep_every_s):
            try:
                self.r.xclaim(self.stream, GROUP, self.name, 0, [entry_id], justid=True)
            except redis.RedisError as exc:
                log.warning("could not refresh entry %s: %s", entry_id, exc)

    def _next(self, timeout_s: float) -> tuple[str, dict] | None:
        try:
            return self._reclaim_due() or self._read(timeout_s)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("Redis unreachable (%s); retrying in %gs", exc, timeout_s)
            time.sleep(timeout_s)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc) and "no such key" not in str(exc):
                raise
            self.backend.ensure_group(force=True)  # the stream was purged under us
        return None

    def _read(self, timeout_s: float) -> tuple[str, dict] | None:
        reply = self.raw.xreadgroup(
            GROUP, self.name, {self.stream: ">"}, count=1, block=max(1, int(timeout_s * 1000))
        )
        return self._decoded(*reply[0][1][0]) if reply and reply[0][1] else None

    def _decoded(self, raw_id: bytes, raw_fields: dict) -> tuple[str, dict] | None:
        """The entry as text, or None when it is not UTF-8 (then dead-lettered, acked)."""
        entry_id = raw_id.decode("ascii")
        try:
            return entry_id, {k.decode(): v.decode() for k, v in raw_fields.items()}
        except UnicodeDecodeError as exc:
            self._bury(entry_id, raw_fields, reason="undecodable", detail=str(exc))
            return None

    def _reclaim_due(self) -> tuple[str, dict] | None:
        """Every so often: take over one entry a dead consumer left idle; trim; tidy."""
        if time.monotonic() < self.next_upkeep:
            return None
        entry = self._reclaim_one()
        if entry is None:  # nothing (more) to take over: rest until the next tick
            self.next_upkeep = time.monotonic() + self.upkeep_every_s
            self._trim()
            self._forget_dead_consumers()
        return entry

    def _reclaim_one(self) -> tuple[str, dict] | None:
        while True:
            cursor, claimed, *_ = self.raw.xautoclaim(
                self.stream, GROUP, self.name, self.min_idle_ms, self.cursor, count=1
            )
            self.cursor = cursor.decode("ascii")
            if claimed:
                entry = self._decoded(*claimed[0])
                if entry is None or self._dead_lettered(*entry):
                    continue
                entry_id, fields = entry
                log.warning(
                    "took over entry %s (job %s) from a silent consumer",
                    entry_id,
                    fields.get("job_id"),
                )
                return entry_id, fields
            if self.cursor == "0-0":
                return None

    def _dead_lettered(self, entry_id: str, fields: dict) -> bool:
        pending = self.r.xpending_range(self.stream, GROUP, entry_id, entry_id, 1)
        deliveries = pending[0]["times_delivered"] if pending else 0
        if deliveries <= DEAD_AFTER_DELIVERIES:
            return False
        self._bury(entry_id, fields, reason="deliveries", detail=f"delivered {deliveries} times")
        return True

    def _bury(self, entry_id: str, fields: dict, *, reason: str, detail: str) -> None:
        """Move an entry to the dead stream and ack it, in one transaction; count it."""
        DEAD_LETTERED[reason] += 1
        log.error(
            "poison entry %s of %s (%.80r): %s; moved to %s (%d %s so far)",
            entry_id,
            self.stream,
            fields.get("job_id", fields.get(b"job_id")),
            detail,
            self.backend.dead_stream,
            DEAD_LETTERED[reason],
            reason,
        )
        with self.raw.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.backend.dead_stream,
                {**fields, "entry_id": entry_id, "reason": reason, "detail": detail},
                maxlen=DEAD_MAXLEN,
                approximate=True,
            )
            pipe.xack(self.stream, GROUP, entry_id)
            pipe.execute()

    def _trim(self) -> None:
        """Drop acked entries only: those older than every pending or undelivered one."""
        group = next((g for g in self.r.xinfo_groups(self.stream) if g["name"] == GROUP), None)
        if group is None:
            return
        oldest_pending = self.r.xpending(self.stream, GROUP).get("min")
        min_id = oldest_pending or group["last-delivered-id"]
        self.r.xtrim(self.stream, minid=min_id, approximate=True)

    def _forget_dead_consumers(self) -> None:
        stale_ms = STALE_CONSUMER_S * 1000
        for consumer in self.r.xinfo_consumers(self.stream, GROUP):
            # Only empty ones: deleting a consumer drops its pending entries for good.
            if consumer["pending"] == 0 and consumer["idle"] > stale_ms:
                self.r.xgroup_delconsumer(self.stream, GROUP, consumer["name"])

    def _leave(self) -> None:
        """On a clean stop, delete this consumer unless it still holds entries."""
        try:
            mine = self.r.xpending_range(self.stream, GROUP, "-", "+", 1, consumername=self.name)
            if not mine:
                self.r.xgroup_delconsumer(self.stream, GROUP, self.name)
        except redis.RedisError as exc:
            log.warning("could not remove consumer %s: %s", self.name, exc)
