"""`procrastinate`: the job deferred as procrastinate's task `ocrlab.process_job` on
`<QUEUE_PREFIX>.<alias>`, run by procrastinate's own worker.

The app is procrastinate's Django integration (`procrastinate.contrib.django.app`): its
tables come from `manage.py migrate`, and publishing goes through the Django connector,
on this process's own database connection, after the OcrJob row is committed
(services.job_create's on_commit). Deferring by name (`configure_task`) needs no task:
an API process never imports the worker; the worker entry (worker.py) registers it.

procrastinate's queue is the table `procrastinate_jobs`: a worker takes a job with
SELECT ... FOR UPDATE SKIP LOCKED and is woken by LISTEN/NOTIFY (a trigger notifies on
insert), with a polling fallback. Workers run one job at a time here (concurrency 1:
the CPU work runs in a child process), so `worker_command(count)` is `count` worker
processes (tasks/slots.py), like Celery's prefork pool.

Crashes: each worker heartbeats (procrastinate_workers, every 10 s); a job of a worker
killed mid-job stays `doing`. procrastinate finds such jobs (`get_stalled_jobs`: workers
without a heartbeat for 30 s) but retries them only when the application asks
(`retry_job`, usually from a periodic task); the worker entry runs that sweep. The lab's
lease brings the job back first (the OcrJob's lease runs out, the relay defers it
again); the guarded services skip whichever copy comes second.
"""

import sys
from uuid import UUID

from django.conf import settings
from django.db import connection
from procrastinate import exceptions as procrastinate_errors
from procrastinate.contrib.django import app

from tasks.backends.base import (
    COMMAND_STOP_GRACE_S,
    Backend,
    BackendUnavailable,
    WorkerCommand,
    queue_name,
)
from tasks.backends.procrastinate.raw import ProcrastinateRawQueue
from tasks.backends.services import Postgres, Service

TASK_NAME = "ocrlab.process_job"
PACKAGES = ("procrastinate",)
SLOTS_MODULE = "tasks.slots"  # one worker process per job slot
WORKER_MODULE = "tasks.backends.procrastinate.worker"  # by name: never imported here
STOP_MARGIN_S = 10.0  # runworker waits this beyond a slot's own stop timeout


class ProcrastinateBackend(Backend):
    """Defer `ocrlab.process_job(job_id=...)` on this alias's queue; run its workers."""

    supports_publish_raw = True  # the task's argument: any text
    raw_note = "task rows on `<prefix>.raw.<alias>`, fetched and finished with procrastinate's SQL"
    client_packages = PACKAGES

    def services(self) -> tuple[Service, ...]:
        return (Postgres(),)

    def broker_service(self) -> Service | None:
        """None: the lab's own database holds the task rows; its restart is the
        PostgreSQL fault, not a broker fault."""
        return None

    def publish_raw(self, payload: bytes) -> None:
        """A task whose argument is `payload` as text (poison: it names no job)."""
        self._enqueue(payload.decode("utf-8", errors="replace"))

    @property
    def queue(self) -> str:
        return queue_name(self.alias)

    def publish(self, job_id: UUID) -> None:
        """One `todo` job row (procrastinate's trigger NOTIFYs the workers)."""
        self._enqueue(str(job_id))

    def _enqueue(self, argument: str) -> None:
        try:
            app.configure_task(TASK_NAME, queue=self.queue).defer(job_id=argument)
        except procrastinate_errors.ConnectorException as exc:
            raise BackendUnavailable(f"{self.alias}: cannot defer: {exc}") from exc

    def purge(self) -> None:
        """Delete the waiting (`todo`) jobs of this alias's queue."""
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM procrastinate_jobs WHERE queue_name = %s AND status = 'todo'",
                [self.queue],
            )

    def raw_queue(self) -> ProcrastinateRawQueue:
        """Task rows on `<QUEUE_PREFIX>.raw.<alias>`, consumed with procrastinate's own SQL
        (procrastinate/raw.py), no task run."""
        return ProcrastinateRawQueue(self)

    def worker_command(self, count: int) -> WorkerCommand:
        """`count` procrastinate workers of one job each, kept alive by tasks.slots."""
        stop_timeout_s = settings.JOB_TIME_LIMIT_S + COMMAND_STOP_GRACE_S
        argv = [
            *(sys.executable, "-m", SLOTS_MODULE, "--count", str(count)),
            *("--name", f"procrastinate[{self.alias}]", "--stop-timeout", str(stop_timeout_s)),
            *("--", sys.executable, "-m", WORKER_MODULE),
        ]
        return WorkerCommand(
            f"procrastinate[{self.alias}]",
            argv,
            env=self.worker_env(),
            stop_timeout_s=stop_timeout_s + STOP_MARGIN_S,
        )
