"""Dramatiq backends: `dramatiq` (RabbitMQ) and `dramatiq-redis` (Redis), one actor.

Publishing enqueues a plain Message on this alias's own broker, so any process can
publish to both aliases without a global broker, and never imports the worker. Workers
are Dramatiq's own: `worker_command` is the Dramatiq CLI (N processes, one thread each)
through `python -m tasks.backends.dramatiq`; runworker runs it as a subprocess, restarts
it if it exits (Dramatiq stops every process when one dies) and SIGTERMs it on stop. The
command line for users is in worker.py.
"""

import sys
import threading
import uuid
from uuid import UUID

from django.conf import settings

from tasks.backends.base import COMMAND_STOP_GRACE_S, Backend, BackendUnavailable, WorkerCommand
from tasks.backends.dramatiq.broker import (
    DEFAULT_HEARTBEAT_TIMEOUT_S,
    POLL_MS,
    PREFETCH,
    PUBLISH_ERRORS,
    Broker,
    RabbitmqBroker,
    build_broker,
    make_message,
    queue_name,
    services_of,
    time_limit_s,
)
from tasks.backends.dramatiq.raw import DramatiqRawQueue
from tasks.backends.services import Service
from tasks.backends.timers import RedeliveryTimer, Tuning, rabbitmq_consumer_timeout

CLI_MODULE = "tasks.backends.dramatiq"  # `python -m` it: Dramatiq's CLI + die_with_parent
SETUP_WORKER = "tasks.backends.dramatiq.worker:setup_worker"  # by name: never imported here
STOP_MARGIN_S = 10.0  # runworker waits this beyond Dramatiq's own shutdown timeout


class DramatiqBackend(Backend):
    """Enqueue `ocrlab_process_job(job_id)` on this alias's queue; run Dramatiq workers."""

    supports_publish_raw = True
    client_packages = ("dramatiq", "pika", "redis")
    raw_note = "Dramatiq messages, consumed and acked with Broker.consume (no Dramatiq worker)"

    def __init__(self, alias: str, options: dict | None = None):
        super().__init__(alias, options)
        self._broker: Broker | None = None
        self._lock = threading.Lock()

    @property
    def broker(self) -> Broker:
        """This alias's broker, built on first use from OPTIONS["url"]."""
        with self._lock:
            if self._broker is None:
                self._broker = build_broker(self.options["url"], self.options)
            return self._broker

    @property
    def queue(self) -> str:
        return queue_name(self.alias)

    def publish(self, job_id: UUID) -> None:
        """Enqueue one message; raise BackendUnavailable when the broker does not take it."""
        try:
            self.broker.enqueue(make_message(self.alias, str(job_id)))
        except PUBLISH_ERRORS as exc:
            raise BackendUnavailable(f"{self.alias}: cannot publish: {exc!r}") from exc

    def publish_raw(self, payload: bytes) -> None:
        """A message whose argument is `payload` when it is text, else a body that is no
        Dramatiq message at all (the worker must drop it)."""
        try:
            arg = payload.decode("utf-8")
        except UnicodeDecodeError:
            self._publish_body(payload)
            return
        self.broker.enqueue(make_message(self.alias, arg))

    def _publish_body(self, body: bytes) -> None:
        broker = self.broker
        if isinstance(broker, RabbitmqBroker):
            broker.declare_queue(self.queue, ensure=True)
            broker.channel.basic_publish(exchange="", routing_key=self.queue, body=body)
        else:  # RedisBroker: its own enqueue, minus the encoding
            broker.do_enqueue(self.queue, str(uuid.uuid4()), body)  # type: ignore[attr-defined]

    def services(self) -> tuple[Service, ...]:
        return services_of(self.options["url"])

    def purge(self) -> None:
        """Drop the waiting messages of this alias's queue (and its delay/dead queues)."""
        broker = self.broker
        if isinstance(broker, RabbitmqBroker):  # purging a missing queue fails
            broker.declare_queue(self.queue, ensure=True)
        broker.flush(self.queue)

    def worker_command(self, count: int) -> WorkerCommand:
        """The Dramatiq CLI: `count` processes of one thread each."""
        stop_timeout_s = time_limit_s() + COMMAND_STOP_GRACE_S
        argv = [
            *(sys.executable, "-m", CLI_MODULE, SETUP_WORKER),
            *("--processes", str(count), "--threads", "1", "--queues", self.queue),
            *("--worker-shutdown-timeout", str(int(stop_timeout_s * 1000))),
        ]
        env = {
            **self.worker_env(),
            "dramatiq_queue_prefetch": str(PREFETCH),
            "dramatiq_worker_timeout": str(POLL_MS),
        }
        return WorkerCommand(f"dramatiq[{self.alias}]", argv, env, stop_timeout_s + STOP_MARGIN_S)

    def raw_queue(self) -> DramatiqRawQueue:
        """Messages on `<QUEUE_PREFIX>.raw.<alias>`, consumed at client level (dramatiq/raw.py)."""
        return DramatiqRawQueue(self)

    def redelivery_timer(self, *, scaled_s: float) -> RedeliveryTimer:
        """RabbitMQ's consumer_timeout, or Dramatiq's Redis heartbeat_timeout: past it
        another worker's maintenance pass requeues the messages of a silent process."""
        if not self.options["url"].startswith(("redis://", "rediss://")):
            return rabbitmq_consumer_timeout(scaled_s=scaled_s, lab_s=time_limit_s() + 60.0)
        often = {  # maintenance on 10 % of commands: seen within seconds; own heartbeats
            "maintenance_chance": 100_000,
            "namespace": f"{settings.QUEUE_PREFIX}-dramatiq",
        }
        return RedeliveryTimer(
            name="heartbeat_timeout",
            owner="Dramatiq's Redis broker",
            default="60 s (maintenance on 0.1 % of commands)",
            defaults=Tuning(
                f"heartbeat_timeout {scaled_s:g} s",
                options={**often, "heartbeat_timeout_s": scaled_s},
            ),
            lab=Tuning(
                f"heartbeat_timeout {DEFAULT_HEARTBEAT_TIMEOUT_S:g} s (Dramatiq's own)",
                options=often,
            ),
        )

    def close(self) -> None:
        with self._lock:
            if self._broker is not None:
                self._broker.close()
                self._broker = None
