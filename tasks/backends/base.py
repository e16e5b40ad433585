"""The one small protocol every job backend implements.

An adapter does three things: turn `publish(job_id)` into a message, turn a message back
into a job id (a `Consumer`: receive, ack, nack, close), and nothing else: the one
consume loop (tasks/consume.py) calls `handle` and acks. Job state, retries, leases and
time limits live in `apps.jobs.services` and `tasks.process`, never here.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from django.conf import settings

# handle(job_id) runs the job; the `db` backend, which claims while it picks, passes the
# claimed row too: handle(job_id, claimed=job).
Handler = Callable[..., str]
POLL_S = 1.0  # how long a blocking receive waits before re-checking the stop flag
# A framework worker command gets this on top of its own time limit to stop warmly.
COMMAND_STOP_GRACE_S = 30.0


@dataclass
class Message:
    job_id: str  # the job id as the message carries it (not checked yet)
    token: Any = None  # the backend's handle for ack/nack (entry id, Kafka message)
    claimed: Any = None  # the `db` backend claims while it receives: the OcrJob


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


class BackendUnavailable(RuntimeError):
    """The broker cannot be reached, or its client library is not installed."""


class Backend:
    """Base class: plain adapters override `publish`, `open_consumer` and `purge`;
    frameworks override `publish`, `purge` and `worker_command`."""

    # True when the job row itself is the message (the `db` backend): nothing to lose.
    row_is_message: bool = False

    def __init__(self, alias: str, options: dict | None = None):
        self.alias = alias
        self.options = dict(options or {})

    def publish(self, job_id: UUID) -> None:
        """Send one message naming `job_id`. Raise if the broker did not take it."""
        raise NotImplementedError

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

    def close(self) -> None:
        """Release connections held by this process."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.alias}>"


def require(module: str, extra: str):
    """Import an optional client library with a clear message when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(
            f"{module} is not installed; `pip install {extra}` (see requirements.txt)"
        ) from exc
