"""`django-tasks`: the job enqueued through Django's own Tasks API (`django.tasks`) on
django-tasks-db's DatabaseBackend, run by its `db_worker`.

settings.TASKS holds a task backend named like the alias (`TASKS["django-tasks"]`,
BACKEND `django_tasks_db.DatabaseBackend`, QUEUES `[<QUEUE_PREFIX>.django-tasks]`).
Publishing is `process_job.using(backend=alias, queue_name=queue).enqueue(job_id)`: one
row in `django_tasks_database_dbtaskresult`, in the lab's own database, after the OcrJob row
is committed (services.job_create's on_commit), so the outbox stays as with every broker.

Workers: db_worker runs one task at a time in its process and has no pool, so
`worker_command(count)` is `count` db_worker processes (tasks/slots.py), each through the
worker entry (worker.py). db_worker claims a row with SELECT ... FOR UPDATE SKIP LOCKED
and polls (no LISTEN/NOTIFY): an idle worker sees a new job within worker.POLL_INTERVAL_S (0.2 s).

Crashes: db_worker has no heartbeat or stalled-task recovery: the task row of a worker
killed mid-job stays RUNNING for good. The job comes back through the lab's own lease
(the OcrJob's lease runs out, the relay republishes: a new task row), and the guarded
services skip any copy of a finished job. A task that raises (the database down while
process_job claims) is stored FAILED and never run again by db_worker: the job is still
QUEUED or RUNNING, and the relay sends it again (RELAY_QUEUED_STALE_S, or the lease).
"""

from django.db import DatabaseError
from django.tasks import TaskResultStatus, task_backends
from django_tasks_db.models import DBTaskResult

from tasks.backends.base import BackendUnavailable
from tasks.backends.django_tasks.raw import DjangoTasksRawQueue
from tasks.backends.django_tasks.task import process_job
from tasks.backends.table_tasks import TableTaskBackend

PACKAGES = ("django-tasks-db",)
WORKER_MODULE = "tasks.backends.django_tasks.worker"  # by name: never imported here


class DjangoTasksBackend(TableTaskBackend):
    """Enqueue `process_job(job_id)` on this alias's task backend; run db_worker."""

    raw_note = "task rows on `<prefix>.raw.<alias>`, claimed as db_worker does (SKIP LOCKED, poll)"
    client_packages = PACKAGES
    worker_module = WORKER_MODULE
    worker_label = "db_worker"

    def _enqueue(self, argument: str) -> None:
        # settings.TASKS fixed the valid queues at start-up; a process that changes its
        # QUEUE_PREFIX later (the bench) still enqueues on the alias's queue of today.
        task_backends[self.alias].queues.add(self.queue)
        try:
            process_job.using(backend=self.alias, queue_name=self.queue).enqueue(argument)
        except DatabaseError as exc:
            raise BackendUnavailable(f"{self.alias}: cannot enqueue: {exc}") from exc

    def purge(self) -> None:
        """Delete the waiting (READY) task rows of this alias's queue."""
        DBTaskResult.objects.filter(
            backend_name=self.alias, queue_name=self.queue, status=TaskResultStatus.READY
        ).delete()

    def raw_queue(self) -> DjangoTasksRawQueue:
        """Task rows on `<QUEUE_PREFIX>.raw.<alias>`, claimed and marked done as db_worker
        does, no task run (django_tasks/raw.py)."""
        return DjangoTasksRawQueue(self.alias)
