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

from django.db import connection
from procrastinate import exceptions as procrastinate_errors
from procrastinate.contrib.django import app

from tasks.backends.base import BackendUnavailable
from tasks.backends.procrastinate.raw import ProcrastinateRawQueue
from tasks.backends.table_tasks import TableTaskBackend

TASK_NAME = "ocrlab.process_job"
PACKAGES = ("procrastinate",)
WORKER_MODULE = "tasks.backends.procrastinate.worker"  # by name: never imported here


class ProcrastinateBackend(TableTaskBackend):
    """Defer `ocrlab.process_job(job_id=...)` on this alias's queue; run its workers."""

    raw_note = "task rows on `<prefix>.raw.<alias>`, fetched and finished with procrastinate's SQL"
    client_packages = PACKAGES
    worker_module = WORKER_MODULE
    worker_label = "procrastinate"

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
