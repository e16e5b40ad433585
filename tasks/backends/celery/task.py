"""The Celery task: `ocrlab.process_job(job_id)` -> tasks.consume.handle_message.

Worker side only: the worker entry (tasks/backends/celery/worker.py) registers it on the
app of its alias; publishers send it by name. Celery never retries it: process_job
stores a failure and republishes a retry itself, through the registry. A database error
(PostgreSQL down at claim time) is the one exception: the message is rejected with
requeue, so the broker delivers it again, instead of acked and lost.
"""

import logging
import time

from celery import Celery, Task
from celery.exceptions import Reject
from django.db import DatabaseError

from tasks.backends.celery.app import TASK_NAME
from tasks.consume import NACK_PAUSE_S, handle_message
from tasks.limits import drop_connection, prestart

log = logging.getLogger(__name__)


def run_process_job(job_id: str) -> str:
    """Run one job; returns what happened (done, failed, retry, skipped, stale, poison).
    Raises Reject(requeue=True) when the database cannot be reached."""
    prestart()
    try:
        return handle_message(job_id)
    except DatabaseError as exc:
        log.warning("job %s: database unavailable (%s); message requeued", job_id, exc)
        drop_connection()
        time.sleep(NACK_PAUSE_S)  # no hot loop while PostgreSQL restarts
        raise Reject(exc, requeue=True) from exc


def register(app: Celery) -> Task:
    """Add the task to `app` only (shared=False: other apps in the process keep theirs)."""
    # celery-types has no overload for the task(fun, **options) call Celery accepts
    return app.task(  # type: ignore[call-overload]
        run_process_job,
        name=TASK_NAME,
        shared=False,
        ignore_result=True,
        acks_late=True,
        reject_on_worker_lost=True,
        max_retries=0,
        autoretry_for=(),
        typing=False,
    )
