"""Celery backends: `rabbit` (V5, RabbitMQ) and `celery-redis` (Redis), one task for both.

Each alias owns its own Celery app (app.make_app), so one process can publish to both.
Publishing sends the task by name: this module never imports the worker. Workers are
Celery's own: `worker_command` is the `celery worker` command (prefork pool, one process
per job slot) on the worker entry module; runworker runs it (tasks/supervisor.py),
restarts it if it dies and stops it warmly. The command line is in worker.py.
"""

import os
import sys
import threading
from uuid import UUID

from django.conf import settings

from tasks.backends.base import COMMAND_STOP_GRACE_S, Backend, BackendUnavailable, WorkerCommand
from tasks.backends.celery.app import (
    HARD_LIMIT_MARGIN_S,
    PUBLISH_ERRORS,
    TASK_NAME,
    Celery,
    lab_consumer_timeout_s,
    lab_visibility_timeout_s,
    make_app,
    queue_name,
    services_of,
)
from tasks.backends.celery.raw import CeleryRawQueue
from tasks.backends.services import Service
from tasks.backends.timers import RedeliveryTimer, Tuning, rabbitmq_consumer_timeout

WORKER_MODULE = "tasks.backends.celery.worker"  # by name: the API never imports it
WORKER_ARGS = (
    "worker --pool prefork --without-gossip --without-mingle --without-heartbeat -O fair "
    "--loglevel INFO"
)


class CeleryBackend(Backend):
    """Publish `ocrlab.process_job(job_id)` to this alias's queue; run Celery workers."""

    supports_publish_raw = True
    client_packages = ("celery", "kombu")
    raw_note = "Celery task messages, consumed and acked with kombu (no Celery worker)"

    def __init__(self, alias: str, options: dict | None = None):
        super().__init__(alias, options)
        self._app: Celery | None = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Celery:
        """This alias's Celery app, built on first use from OPTIONS["url"]."""
        with self._lock:
            if self._app is None:
                self._app = make_app(self.alias, self.options["url"], self.options)
            return self._app

    @property
    def queue(self) -> str:
        return queue_name(self.alias)

    def publish(self, job_id: UUID) -> None:
        """Send the task once, without Celery's publish retries: a dead broker raises
        within broker_connection_timeout, and the job stays PENDING for the relay."""
        try:
            self.app.send_task(TASK_NAME, args=[str(job_id)], queue=self.queue, retry=False)
        except PUBLISH_ERRORS as exc:
            raise BackendUnavailable(f"{self.alias}: cannot publish: {exc}") from exc

    def publish_raw(self, payload: bytes) -> None:
        """A task whose argument is `payload` when it is text, else a body that is no
        task at all (Celery's own worker must drop it)."""
        try:
            arg = payload.decode("utf-8")
        except UnicodeDecodeError:
            with self.app.connection_for_write() as conn:
                conn.Producer().publish(
                    payload,
                    routing_key=self.queue,
                    exchange="",
                    content_type="application/octet-stream",
                    content_encoding="binary",
                    retry=False,
                )
            return
        self.app.send_task(TASK_NAME, args=[arg], queue=self.queue, retry=False)

    def services(self) -> tuple[Service, ...]:
        return services_of(self.options["url"])

    def purge(self) -> None:
        """Drop the waiting messages of this alias's queue (declared first if missing)."""
        app = self.app
        with app.connection_for_write() as conn:
            queue = app.amqp.queues[self.queue](conn.default_channel)
            queue.declare()
            queue.purge()

    def worker_command(self, count: int) -> WorkerCommand:
        """`celery worker` with `count` prefork processes."""
        return WorkerCommand(
            name=f"celery[{self.alias}]",
            argv=[
                *(sys.executable, "-m", "celery", "-A", WORKER_MODULE, *WORKER_ARGS.split()),
                *("--concurrency", str(count), "-Q", self.queue),
                *("--hostname", f"{self.alias}-{os.getpid()}@%h"),
            ],
            env=self.worker_env(),
            stop_timeout_s=settings.JOB_TIME_LIMIT_S + HARD_LIMIT_MARGIN_S + COMMAND_STOP_GRACE_S,
        )

    def raw_queue(self) -> CeleryRawQueue:
        """Messages on `<QUEUE_PREFIX>.raw.<alias>`, consumed at client level (celery/raw.py)."""
        return CeleryRawQueue(self)

    def redelivery_timer(self, *, scaled_s: float) -> RedeliveryTimer:
        """RabbitMQ's consumer_timeout (broker-wide before 3.12) or, on Redis, the
        transport's visibility_timeout; acks_late stays on in both runs."""
        if self.options["url"].startswith(("redis://", "rediss://")):
            every_s = max(1.0, scaled_s / 10)  # kombu sweeps every ~100 s: scaled too
            sweep = {"restore_every_s": every_s}
            return RedeliveryTimer(
                name="visibility_timeout",
                owner="Celery's Redis transport (kombu)",
                default="1 h",
                defaults=Tuning(
                    f"visibility_timeout {scaled_s:g} s, swept every {every_s:g} s",
                    options={**sweep, "visibility_timeout_s": scaled_s},
                ),
                lab=Tuning(f"visibility_timeout {lab_visibility_timeout_s():g} s", options=sweep),
                log_signs=(r"[Rr]estor\w* .*unacked",),
            )
        return rabbitmq_consumer_timeout(scaled_s=scaled_s, lab_s=lab_consumer_timeout_s())

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None
