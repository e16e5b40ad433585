"""Dramatiq backends: `dramatiq` (RabbitMQ) and `dramatiq-redis` (Redis), one actor.

Publishing enqueues a plain Message on this alias's own broker, so any process can
publish to both aliases without a global broker. Workers are Dramatiq's own:
`worker_command` is the Dramatiq CLI (N processes, one thread each) as a subprocess,
restarts it if it exits (Dramatiq stops every process when one dies) and SIGTERMs it on
stop. The CLI command for users is in tasks/dramatiq_actors.py.
"""

import contextlib
import importlib
import sys
import threading
from typing import TYPE_CHECKING
from uuid import UUID

from django.conf import settings

from tasks.backends.base import (
    COMMAND_STOP_GRACE_S,
    Backend,
    BackendUnavailable,
    WorkerCommand,
    require,
)

if TYPE_CHECKING:
    import dramatiq


class DramatiqBackend(Backend):
    """Enqueue `ocrlab_process_job(job_id)` on this alias's queue; run Dramatiq workers."""

    def __init__(self, alias: str, options: dict | None = None, version: str = "api"):
        super().__init__(alias, options, version)
        self._broker: dramatiq.Broker | None = None
        self._lock = threading.Lock()

    @property
    def broker(self):
        """This alias's broker, built on first use from OPTIONS["url"]."""
        with self._lock:
            if self._broker is None:
                require("dramatiq", "dramatiq[rabbitmq,redis]")
                from tasks.dramatiq_actors import build_broker

                self._broker = build_broker(self.options["url"])
            return self._broker

    @property
    def queue(self) -> str:
        return f"{settings.QUEUE_PREFIX}.{self.alias}"

    def publish(self, job_id: UUID) -> None:
        """Enqueue one message; raise BackendUnavailable when the broker does not take it."""
        from tasks.dramatiq_actors import make_message

        try:
            self.broker.enqueue(make_message(self.alias, str(job_id)))
        except _broker_errors() as exc:
            raise BackendUnavailable(f"{self.alias}: cannot publish: {exc!r}") from exc

    def purge(self) -> None:
        """Drop the waiting messages of this alias's queue (and its delay/dead queues)."""
        broker = self.broker
        if type(broker).__name__ == "RabbitmqBroker":  # purging a missing queue fails
            broker.declare_queue(self.queue, ensure=True)
        broker.flush(self.queue)

    def worker_command(self, count: int) -> WorkerCommand:
        """The Dramatiq CLI: `count` processes of one thread each."""
        from tasks.dramatiq_actors import ALIAS_ENV, POLL_MS, PREFETCH, time_limit_s

        stop_timeout_s = time_limit_s() + COMMAND_STOP_GRACE_S
        argv = [
            *(sys.executable, "-m", "tasks.dramatiq_actors", "tasks.dramatiq_actors:setup_worker"),
            *("--processes", str(count), "--threads", "1", "--queues", self.queue),
            *("--worker-shutdown-timeout", str(int(stop_timeout_s * 1000))),
        ]
        env = {
            ALIAS_ENV: self.alias,
            "dramatiq_queue_prefetch": str(PREFETCH),
            "dramatiq_worker_timeout": str(POLL_MS),
        }
        return WorkerCommand(f"dramatiq[{self.alias}]", argv, env, stop_timeout_s + 10)

    def close(self) -> None:
        with self._lock:
            if self._broker is not None:
                self._broker.close()
                self._broker = None


def _broker_errors() -> tuple[type[BaseException], ...]:
    """What a failed enqueue raises: Dramatiq's errors, pika's, redis-py's, socket errors."""
    errors: list[type[BaseException]] = [OSError]
    for module, name in (
        ("dramatiq.errors", "DramatiqError"),
        ("pika.exceptions", "AMQPError"),
        ("redis.exceptions", "RedisError"),
    ):
        with contextlib.suppress(ImportError):
            errors.append(getattr(importlib.import_module(module), name))
    return tuple(errors)
