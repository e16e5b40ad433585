"""The Celery task: `ocrlab.process_job(job_id)` -> tasks.process.process_job.

Registered on each alias's app by ocrproject.celery.make_app. Celery never retries it:
process_job stores a failure and republishes a retry itself, through the registry.
"""

from celery import Celery, Task


def run_process_job(job_id: str) -> str:
    """Run one job; returns what happened (done, failed, retry, skipped, stale, poison)."""
    from tasks.consume import handle_message
    from tasks.limits import prestart

    prestart()
    return handle_message(job_id)


def register(app: Celery, name: str) -> Task:
    """Add the task to `app` only (shared=False: other apps in the process keep theirs)."""
    # celery-types has no overload for the task(fun, **options) call Celery accepts
    return app.task(  # type: ignore[call-overload]
        run_process_job,
        name=name,
        shared=False,
        ignore_result=True,
        acks_late=True,
        reject_on_worker_lost=True,
        max_retries=0,
        autoretry_for=(),
        typing=False,
    )
