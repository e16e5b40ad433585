"""The procrastinate task `ocrlab.process_job(job_id)` -> tasks.consume.handle_message.

Worker side only: the worker entry (worker.py) registers it on procrastinate's Django
app; publishers defer it by name (backend.py). procrastinate never retries it (retry
off): process_job stores a failure and sends a retry itself, through the registry. A
sync task runs in a thread of the worker's executor; the workload child is per thread.
"""

from procrastinate import App

from tasks.backends.procrastinate.backend import TASK_NAME
from tasks.consume import handle_message
from tasks.limits import prestart


def run_process_job(job_id: str) -> str:
    """Run one job; returns what happened (done, failed, retry, skipped, stale, poison)."""
    prestart()
    return handle_message(job_id)


def register(app: App) -> None:
    """Add the task to `app` under TASK_NAME (no procrastinate retries)."""
    app.task(name=TASK_NAME, retry=False, pass_context=False)(run_process_job)
