"""Celery backends: `rabbit` (V5, RabbitMQ) and `celery-redis` (Redis), one task for both.

Each alias owns its own Celery app (ocrproject.celery.make_app), so one process can
publish to both. Workers are Celery's own: `worker_command` is the `celery worker`
command (prefork pool, one process per job slot) as a subprocess and restarts it if it
dies. The same command, for users who want Celery's CLI directly:

    OCRLAB_CELERY_BACKEND=rabbit .venv/bin/celery -A ocrproject worker --pool prefork \
        --concurrency 2 -Q ocrlab.rabbit --without-gossip --without-mingle \
        --without-heartbeat -O fair --loglevel INFO

runworker runs it (tasks/supervisor.CommandWorkers), restarts it and stops it warmly.
"""

import logging
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
    from celery import Celery

log = logging.getLogger(__name__)


class CeleryBackend(Backend):
    """Publish `ocrlab.process_job(job_id)` to this alias's queue; run Celery workers."""

    def __init__(self, alias: str, options: dict | None = None, version: str = "api"):
        super().__init__(alias, options, version)
        self._app: Celery | None = None
        self._lock = threading.Lock()

    @property
    def app(self):
        """This alias's Celery app, built on first use from OPTIONS["url"]."""
        with self._lock:
            if self._app is None:
                require("celery", "celery")
                from ocrproject.celery import make_app

                self._app = make_app(self.alias, self.options["url"])
            return self._app

    @property
    def queue(self) -> str:
        return f"{settings.QUEUE_PREFIX}.{self.alias}"

    def publish(self, job_id: UUID) -> None:
        """Send the task once, without Celery's publish retries: a dead broker raises
        within broker_connection_timeout, and the job stays PENDING for the relay."""
        from kombu.exceptions import OperationalError

        from ocrproject.celery import TASK_NAME

        try:
            self.app.send_task(TASK_NAME, args=[str(job_id)], queue=self.queue, retry=False)
        except (OperationalError, OSError) as exc:
            raise BackendUnavailable(f"{self.alias}: cannot publish: {exc}") from exc

    def purge(self) -> None:
        """Drop the waiting messages of this alias's queue (declared first if missing)."""
        app = self.app
        with app.connection_for_write() as conn:
            queue = app.amqp.queues[self.queue](conn.default_channel)
            queue.declare()
            queue.purge()

    def worker_command(self, count: int) -> WorkerCommand:
        """`celery worker` with `count` prefork processes."""
        from ocrproject.celery import ALIAS_ENV, HARD_LIMIT_MARGIN_S, worker_command

        return WorkerCommand(
            name=f"celery[{self.alias}]",
            argv=worker_command(self.alias, count),
            env={ALIAS_ENV: self.alias},
            stop_timeout_s=settings.JOB_TIME_LIMIT_S + HARD_LIMIT_MARGIN_S + COMMAND_STOP_GRACE_S,
        )

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None
