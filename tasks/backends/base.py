"""The one small contract every job backend implements, and all the rest of the lab
may know of a backend.

An adapter does three things: turn `publish(job_id)` into a message, turn a message back
into a job id (a `Consumer`: receive, ack, nack, close), and nothing else: the one
consume loop (tasks/consume.py) hands each `Message` to its handler and acks. Job state,
retries, leases and time limits live in `apps.jobs.services` and `tasks.process`, never
here.

Whatever else the lab asks of a backend, it asks the `Backend` instance (from the
registry), never a switch on its alias, class name or URL scheme:

- `services()`: the servers it needs (`tasks.backends.services`: kind, address, default
  port, readiness `ping`, process names, `stop`/`start` for chaos, what a restart loses);
  `broker_service()` is the one holding its messages, None when the job row is the message.
- `hand_over(job_id, mark_queued=...)`: publish and mark the row QUEUED, in its order.
- `publish_raw(payload)`: write any bytes as a message (poison messages), if
  `supports_publish_raw`.
- `worker_command(count)`: a framework's own worker command, or None for the one consume
  loop; every worker process learns its alias from WORKER_BACKEND_ENV (`worker_env()`).
- `raw_queue()`: a queue of this backend's own kind that carries noop messages without
  job rows (the bench's raw family: publish, receive, ack), or None with `raw_note` why.
- capability flags (class attributes, defaults below): `row_is_message`,
  `supports_publish_raw`; `client_packages` names the client libraries it runs on.

Everything new has a default here, so a backend written against the first three methods
keeps working.
"""

import importlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from django.conf import settings

if TYPE_CHECKING:
    from apps.jobs.models import OcrJob
    from tasks.backends.services import Service

POLL_S = 1.0  # how long a blocking receive waits before re-checking the stop flag
# A framework worker command gets this on top of its own time limit to stop warmly.
COMMAND_STOP_GRACE_S = 30.0
# Every worker process (a consume-loop worker, a Celery or Dramatiq worker) reads the
# alias it serves from this variable: the one way a worker learns its backend.
WORKER_BACKEND_ENV = "OCRLAB_BACKEND"


@dataclass
class Message:
    job_id: str  # the job id as the message carries it (not checked yet)
    token: Any = None  # the backend's handle for ack/nack (entry id, Kafka message)
    # A consumer that claims while it receives (a table queue) hands the claimed row
    # over here; process_job then skips its own claim.
    claimed: "OcrJob | None" = None


# The consume loop's handler: runs the message's job, returns what happened.
Handler = Callable[[Message], str]


class Consumer(Protocol):
    """What a plain adapter's worker side implements (one per worker process)."""

    def receive(self, timeout_s: float) -> Message | None:
        """The next message, or None after `timeout_s`; transport errors may raise."""
        ...

    def ack(self, message: Message) -> None:
        """Done with `message` (called after the job is stored, or skipped)."""
        ...

    def nack(self, message: Message) -> None:
        """`message` was not handled: let it be delivered again."""
        ...

    def close(self) -> None:
        """Leave the group, release connections."""
        ...


def queue_name(alias: str) -> str:
    """The broker queue of a framework alias (Celery, Dramatiq): `<QUEUE_PREFIX>.<alias>`."""
    return f"{settings.QUEUE_PREFIX}.{alias}"


@dataclass(frozen=True)
class WorkerCommand:
    """A framework's own worker command (Celery, Dramatiq): what runworker runs, restarts
    when it dies, and SIGTERMs on stop (tasks/supervisor.py)."""

    name: str  # for logs: "celery[rabbit]"
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stop_timeout_s: float = 60.0  # warm shutdown: the current jobs finish within this


# A raw queue's twin alias: `raw.<alias>` (a framework's queue: `<QUEUE_PREFIX>.raw.<alias>`).
RAW_ALIAS_PREFIX = "raw."


class RawQueue(Protocol):
    """Noop messages through a backend's own client, no job rows (the bench's raw family):
    the bench publishes, consumer processes receive and ack (tasks/raw_consume.py)."""

    def prepare(self) -> None:
        """Make the queue exist and empty (in the publishing process)."""
        ...

    def publish(self) -> None:
        """Send one noop message."""
        ...

    def open_consumer(self, name: str) -> Consumer:
        """In a consumer process: receive and ack (never nack or handle a job)."""
        ...

    def purge(self) -> None:
        """Drop what is left (and any scratch structure the queue made)."""
        ...

    def close(self) -> None:
        """Release this process's connections."""
        ...


class TwinRawQueue:
    """A raw queue for a backend whose queue is named after its alias: the same class under
    alias `raw.<alias>` (its own stream, topic or queue), published with `publish(uuid)`.
    A plain adapter consumes it with its own Consumer; a framework overrides
    `open_consumer` with a client-level consumer (its worker would run the job)."""

    def __init__(self, backend: "Backend"):
        self.twin = type(backend)(RAW_ALIAS_PREFIX + backend.alias, backend.options)

    def prepare(self) -> None:
        self.twin.purge()

    def publish(self) -> None:
        self.twin.publish(uuid.uuid4())

    def open_consumer(self, name: str) -> Consumer:
        return self.twin.open_consumer(name)

    def purge(self) -> None:
        self.twin.purge()

    def close(self) -> None:
        self.twin.close()


class BackendUnavailable(RuntimeError):
    """The broker cannot be reached, or its client library is not installed."""


class Backend:
    """Base class: plain adapters override `publish`, `open_consumer` and `purge`;
    frameworks override `publish`, `purge` and `worker_command`. `services`,
    `publish_raw` and the flags below are what the lab asks besides."""

    # True when the job row itself is the message (a table queue): no broker holds it, so
    # no message can be lost before its claim, and broker faults do not apply.
    row_is_message: bool = False
    # True when `publish_raw` writes arbitrary bytes as a message (chaos: poison).
    supports_publish_raw: bool = False
    # The client libraries this backend runs on (pip names; the bench records versions).
    client_packages: tuple[str, ...] = ()
    # What `raw_queue()` measures, or why it is None (the raw family's report says it).
    raw_note: str = "not measured: this backend has no raw queue (Backend.raw_queue)"

    def __init__(self, alias: str, options: dict | None = None):
        self.alias = alias
        self.options = dict(options or {})

    def publish(self, job_id: UUID) -> None:
        """Send one message naming `job_id`. Raise if the broker did not take it."""
        raise NotImplementedError

    def hand_over(self, job_id: UUID, *, mark_queued: Callable[[], None]) -> None:
        """Publish `job_id` and mark its row QUEUED (`mark_queued`), in this backend's
        order. The default, for a broker: publish, then mark; a publish that raises
        leaves the row unmarked (the relay sends it again). A table queue marks first."""
        self.publish(job_id)
        mark_queued()

    def publish_raw(self, payload: bytes) -> None:
        """Write `payload` as it is as one message of this backend's queue (poison
        messages for chaos and tests); only if `supports_publish_raw`."""
        raise NotImplementedError(f"{self!r} cannot write raw messages")

    def services(self) -> "tuple[Service, ...]":
        """The servers this backend needs, its broker first (tasks/backends/services.py)."""
        return ()

    def broker_service(self) -> "Service | None":
        """The server that holds this backend's messages; None when the row is the
        message (then the database holds it) or when it needs no server (in memory)."""
        found = self.services()
        return None if self.row_is_message or not found else found[0]

    def worker_env(self) -> dict[str, str]:
        """The environment that tells a worker process which alias it serves."""
        return {WORKER_BACKEND_ENV: self.alias}

    def open_consumer(self, worker: str) -> Consumer:
        """In a worker process: a Consumer of this backend's queue, named `worker`
        (tasks/consume.consume_loop runs it). Frameworks consume in their own workers."""
        raise NotImplementedError

    def purge(self) -> None:
        """Drop every message waiting in this backend's queue (benchmarks and tests)."""
        raise NotImplementedError

    def worker_command(self, count: int) -> WorkerCommand | None:
        """A framework's worker command serving `count` jobs at a time, or None for a
        plain adapter (runworker then runs `count` processes of the one consume loop)."""
        return None

    def raw_queue(self) -> RawQueue | None:
        """A queue of this backend's kind for noop messages without job rows (the bench's
        raw family), or None when it has none (`raw_note` says why)."""
        return None

    def close(self) -> None:
        """Release connections held by this process."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.alias}>"


def worker_alias() -> str:
    """In a worker process: the alias it serves (WORKER_BACKEND_ENV)."""
    alias = os.environ.get(WORKER_BACKEND_ENV, "")
    if not alias:
        raise RuntimeError(f"{WORKER_BACKEND_ENV} is not set: which backend should this serve?")
    return alias


def require(module: str, extra: str):
    """Import an optional client library with a clear message when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(
            f"{module} is not installed; `pip install {extra}` (see requirements.txt)"
        ) from exc
