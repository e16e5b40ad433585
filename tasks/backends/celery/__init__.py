"""Celery as a job backend: `app` (settings, queue), `backend` (publish by task name,
purge, the worker command), and the worker side, which only a worker process imports:
`task` (the task body) and `worker` (what `celery -A tasks.backends.celery.worker` loads).
"""

from tasks.backends.celery.backend import CeleryBackend

__all__ = ["CeleryBackend"]
