"""The `django.tasks` task `process_job(job_id)`, declared for publishers and workers.

A publisher needs the Task object to enqueue it (`django.tasks` stores its dotted path),
so this module stays light: it never imports the worker. Its body is handed in by the
worker entry (worker.py: `tasks.consume.handle_message`) before db_worker starts, the way
the Celery and Dramatiq entries register their task or actor on the app of their alias.
"""

from collections.abc import Callable

from django.tasks import task

# Set once per worker process by tasks.backends.django_tasks.worker.
_handlers: list[Callable[[str], str]] = []


def set_handler(handler: Callable[[str], str]) -> None:
    """The worker entry's job runner (prestart + handle_message)."""
    _handlers[:] = [handler]


@task
def process_job(job_id: str) -> str:
    """Run one job; returns what happened (done, failed, retry, skipped, stale, poison),
    which db_worker stores as the task's return value."""
    if not _handlers:
        raise RuntimeError(
            "no job handler: run the worker as `python -m tasks.backends.django_tasks.worker`"
            " (runworker --backend <alias>), not `manage.py db_worker`"
        )
    return _handlers[0](job_id)
