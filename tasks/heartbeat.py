"""A worker process announces itself: a daemon thread upserts its `WorkerHeartbeat` row
every WORKER_HEARTBEAT_S (apps/jobs/workers.py) and deletes it when the worker stops.
Run by the consume loop's processes, each Celery and Dramatiq worker process and the
django-tasks and procrastinate worker entries."""

import logging
import threading

from django.conf import settings
from django.db import connection

from apps.jobs.workers import worker_beat, worker_gone

log = logging.getLogger("tasks.heartbeat")


def heartbeat_start(*, worker: str, backend: str, stop: threading.Event) -> threading.Thread:
    """Beat for `worker` until `stop` is set (then say goodbye); returns the thread."""
    thread = threading.Thread(
        target=_beat_loop, args=(worker, backend, stop), name="heartbeat", daemon=True
    )
    thread.start()
    return thread


def _beat_loop(worker: str, backend: str, stop: threading.Event) -> None:
    while True:
        _quietly(worker_beat, worker=worker, backend=backend)
        if stop.wait(settings.WORKER_HEARTBEAT_S):
            break
    _quietly(worker_gone, worker=worker)


def _quietly(call, **kwargs) -> None:
    """One database write; a failure (database restarting) waits for the next beat."""
    try:
        call(**kwargs)
    except Exception as exc:
        log.warning("heartbeat %s failed: %s", call.__name__, exc)
    finally:
        connection.close()  # back to the pool between beats
