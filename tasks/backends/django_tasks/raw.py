"""django-tasks' raw queue: task rows enqueued through Django's Tasks API on
`<QUEUE_PREFIX>.raw.<alias>`, taken the way db_worker takes them (`ready()`, SELECT ...
FOR UPDATE SKIP LOCKED, `claim`) and marked successful, without running the task or
db_worker. Like db_worker, an idle consumer polls (no LISTEN/NOTIFY)."""

import time
import uuid

from django.db import transaction
from django.tasks import task_backends
from django_tasks_db.models import DBTaskResult

from tasks.backends.base import RAW_ALIAS_PREFIX, Message, queue_name
from tasks.backends.django_tasks.task import process_job

IDLE_S = 0.2  # the lab's db_worker interval


class DjangoTasksRawQueue:
    """The alias's task backend and its raw queue. The queue is the bench's own, so it is
    added to the task backend's valid queues here, not in settings.TASKS (whose QUEUES
    are fixed at start-up, while the bench sets its QUEUE_PREFIX at run time)."""

    def __init__(self, alias: str):
        self.alias, self.queue = alias, queue_name(RAW_ALIAS_PREFIX + alias)
        task_backends[alias].queues.add(self.queue)

    def rows(self):
        return DBTaskResult.objects.filter(backend_name=self.alias, queue_name=self.queue)

    def prepare(self) -> None:
        self.rows().delete()

    def publish(self) -> None:
        process_job.using(backend=self.alias, queue_name=self.queue).enqueue(str(uuid.uuid4()))

    def open_consumer(self, name: str) -> "TaskRowFetcher":
        return TaskRowFetcher(self, name)

    def purge(self) -> None:
        self.rows().delete()

    def close(self) -> None:
        """Django's connection is the caller's."""


class TaskRowFetcher:
    """Claim a ready row as db_worker does; ack = set_successful."""

    def __init__(self, queue: DjangoTasksRawQueue, name: str):
        self.queue, self.name = queue, name

    def receive(self, timeout_s: float) -> Message | None:
        with transaction.atomic():
            row = self.queue.rows().ready().get_locked()
            if row is not None:
                row.claim(self.name)
        if row is None:
            time.sleep(min(timeout_s, IDLE_S))
            return None
        return Message(job_id=str(row.id), token=row)

    def ack(self, message: Message) -> None:
        message.token.set_successful(None)

    def nack(self, message: Message) -> None:
        """Left RUNNING, as a killed db_worker leaves it."""

    def close(self) -> None:
        """Nothing held."""
