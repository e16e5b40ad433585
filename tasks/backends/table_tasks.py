"""The shared half of a task library that queues in the lab's own PostgreSQL (django-tasks,
procrastinate): its task rows live in the same database as the job rows, and its worker
runs one job at a time, so `runworker --workers N` is N of its worker processes, each kept
alive by tasks/slots.py. A subclass says how to enqueue and purge, and names its worker
entry module, its display name and its client packages."""

import sys
from uuid import UUID

from django.conf import settings

from tasks.backends.base import COMMAND_STOP_GRACE_S, Backend, WorkerCommand, queue_name
from tasks.backends.services import Postgres, Service

SLOTS_MODULE = "tasks.slots"  # one worker process per job slot
STOP_MARGIN_S = 10.0  # runworker waits this beyond a slot's own stop timeout


class TableTaskBackend(Backend):
    """Publish by enqueueing a task row; `worker_command` runs the library's worker."""

    supports_publish_raw = True  # the task's argument: any text
    worker_module = ""  # the worker entry, by name: never imported by the publisher
    worker_label = ""  # for logs: "<label>[alias]"

    @property
    def queue(self) -> str:
        return queue_name(self.alias)

    def services(self) -> tuple[Service, ...]:
        return (Postgres(),)

    def broker_service(self) -> Service | None:
        """None: the lab's own database holds the task rows; its restart is the
        PostgreSQL fault, not a broker fault."""
        return None

    def publish(self, job_id: UUID) -> None:
        """One task row naming `job_id`; a database error raises (the relay sends it later)."""
        self._enqueue(str(job_id))

    def publish_raw(self, payload: bytes) -> None:
        """A task whose argument is `payload` as text (poison: it names no job). PostgreSQL
        text and jsonb hold no NUL character, so one becomes U+FFFD."""
        self._enqueue(payload.decode("utf-8", errors="replace").replace("\x00", "\ufffd"))

    def _enqueue(self, argument: str) -> None:
        """Enqueue one task with `argument`; raise BackendUnavailable if it failed."""
        raise NotImplementedError

    def worker_command(self, count: int) -> WorkerCommand:
        """`count` worker processes of one job each, kept alive by tasks.slots."""
        stop_timeout_s = settings.JOB_TIME_LIMIT_S + COMMAND_STOP_GRACE_S
        name = f"{self.worker_label}[{self.alias}]"
        argv = [
            *(sys.executable, "-m", SLOTS_MODULE, "--count", str(count)),
            *("--name", name, "--stop-timeout", str(stop_timeout_s)),
            *("--", sys.executable, "-m", self.worker_module),
        ]
        return WorkerCommand(
            name, argv, env=self.worker_env(), stop_timeout_s=stop_timeout_s + STOP_MARGIN_S
        )
