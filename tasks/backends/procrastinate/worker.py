"""The worker entry: one procrastinate worker (one job at a time) serving the queue of
OCRLAB_BACKEND, plus procrastinate's stalled-job sweep.

runworker runs `count` of these through tasks.slots (ProcrastinateBackend.worker_command),
restarts any that dies and stops them warmly. The command line, for users:

    OCRLAB_BACKEND=procrastinate .venv/bin/python -m tasks.slots --count 2 \
        -- .venv/bin/python -m tasks.backends.procrastinate.worker

Like wsgi.py, this module sets Django up at import, before it imports the task (the
worker: process_job, the models). The worker uses procrastinate's psycopg connector on
the Django database settings (LISTEN/NOTIFY needs it; the Django connector has none).
"""

import asyncio
import contextlib
import logging
import os
import threading

import django

from tasks.supervisor import die_with_parent

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
django.setup()

from procrastinate import PsycopgConnector  # noqa: E402
from procrastinate import exceptions as procrastinate_errors  # noqa: E402
from procrastinate.contrib.django import app, connector_params  # noqa: E402

from apps.jobs.services import worker_name  # noqa: E402 (needs the app registry)
from tasks.backends.base import queue_name, worker_alias  # noqa: E402
from tasks.backends.procrastinate.backend import ProcrastinateBackend  # noqa: E402
from tasks.backends.procrastinate.task import register  # noqa: E402
from tasks.backends.registry import get_backend  # noqa: E402
from tasks.heartbeat import heartbeat_start  # noqa: E402
from tasks.limits import prestart  # noqa: E402

log = logging.getLogger("tasks.backends.procrastinate.worker")  # also when run as __main__
POLL_S = 1.0  # fetch fallback when a NOTIFY was missed (procrastinate's default: 5 s)
HEARTBEAT_S = 10.0  # procrastinate's defaults: a worker heartbeats this often and
STALLED_AFTER_S = 30.0  # is stalled when silent this long; its `doing` jobs then are too
SWEEP_EVERY_S = 15.0
# procrastinate's own pool (psycopg_pool's default is 4 open connections): the LISTEN
# connection, plus fetch/finish and the heartbeat; Django's pool serves process_job.
POOL_MIN_SIZE, POOL_MAX_SIZE = 1, 3


def alias() -> str:
    """The alias in OCRLAB_BACKEND, checked to be a ProcrastinateBackend."""
    name = worker_alias()
    if not isinstance(get_backend(name), ProcrastinateBackend):
        raise RuntimeError(f"OCRLAB_BACKEND={name!r} is not a ProcrastinateBackend alias")
    return name


async def retry_stalled_jobs(queue: str) -> int:
    """procrastinate's recovery: put `doing` jobs of silent workers back to `todo`. Another
    worker may retry the same job first; that one is skipped."""
    retried = 0
    for job in await app.job_manager.get_stalled_jobs(
        queue=queue, seconds_since_heartbeat=STALLED_AFTER_S
    ):
        with contextlib.suppress(procrastinate_errors.ConnectorException):
            await app.job_manager.retry_job(job)
            retried += 1
            log.warning("stalled job %s (worker %s gone) retried", job.id, job.worker_id)
    return retried


async def sweep_stalled(queue: str) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY_S)
        try:
            await retry_stalled_jobs(queue)
        except procrastinate_errors.ConnectorException as exc:
            log.warning("stalled-job sweep failed (database down?): %s", exc)


async def serve(queue: str) -> None:
    """Run the worker until SIGTERM (warm: the current job finishes), with the sweep."""
    await asyncio.get_running_loop().run_in_executor(None, prestart)  # the tasks' thread
    async with app.open_async():
        sweeper = asyncio.create_task(sweep_stalled(queue))
        try:
            await app.run_worker_async(
                queues=[queue],
                name=worker_name(),
                concurrency=1,
                delete_jobs="successful",  # the OcrJob row is the result
                fetch_job_polling_interval=POLL_S,
                update_heartbeat_interval=HEARTBEAT_S,
                stalled_worker_timeout=STALLED_AFTER_S,
            )
        finally:
            sweeper.cancel()


def main() -> None:
    name = alias()
    register(app)
    die_with_parent()
    # The Django connector has no LISTEN: the worker gets a psycopg pool on the same
    # database (what procrastinate's own `manage.py procrastinate worker` does).
    connector = PsycopgConnector(
        kwargs=connector_params(), min_size=POOL_MIN_SIZE, max_size=POOL_MAX_SIZE
    )
    stop = threading.Event()
    heartbeat_start(worker=worker_name(), backend=name, stop=stop)  # a live worker
    try:
        with app.replace_connector(connector):
            asyncio.run(serve(queue_name(name)))
    finally:
        stop.set()


if __name__ == "__main__":
    main()
