"""Worker presence: each worker process upserts its `WorkerHeartbeat` row every
WORKER_HEARTBEAT_S; a backend has a live consumer while a row of it is younger than
WORKER_HEARTBEAT_TTL_S. The API refuses submits to a backend without one (apps/jobs/quotas.py)
and the ops dashboard lists the workers, idle ones included."""

from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.db.models.functions import Now

from apps.jobs.backends import backend_aliases
from apps.jobs.models import WorkerHeartbeat


def worker_beat(*, worker: str, backend: str) -> None:
    """Record that `worker` (host:pid) is consuming `backend` now."""
    updated = WorkerHeartbeat.objects.filter(worker=worker).update(backend=backend, beat_at=Now())
    if not updated:
        WorkerHeartbeat.objects.update_or_create(
            worker=worker, defaults={"backend": backend, "beat_at": Now(), "started_at": Now()}
        )


def worker_gone(*, worker: str) -> None:
    """A worker that stops cleanly takes its row away (a killed one just ages out)."""
    WorkerHeartbeat.objects.filter(worker=worker).delete()


def workers_live() -> QuerySet[WorkerHeartbeat]:
    """Heartbeats younger than WORKER_HEARTBEAT_TTL_S, by backend then worker."""
    since = Now() - timedelta(seconds=settings.WORKER_HEARTBEAT_TTL_S)
    return WorkerHeartbeat.objects.filter(beat_at__gt=since).order_by("backend", "worker")


def backend_has_consumer(*, backend: str) -> bool:
    """True when a live worker consumes `backend` (an in-process backend always has one)."""
    if backend not in backend_aliases():  # the in-process test backend: no worker command
        return True
    return workers_live().filter(backend=backend).exists()


def workers_expired_delete() -> int:
    """Rows of workers silent for ten TTLs (killed without a goodbye)."""
    since = Now() - timedelta(seconds=10 * settings.WORKER_HEARTBEAT_TTL_S)
    return WorkerHeartbeat.objects.filter(beat_at__lt=since).delete()[0]
