"""The worker entry: one `db_worker` process serving the queue of OCRLAB_BACKEND.

runworker runs `count` of these through tasks.slots (DjangoTasksBackend.worker_command),
restarts any that dies and stops them warmly. The command line, for users:

    OCRLAB_BACKEND=django-tasks .venv/bin/python -m tasks.slots --count 2 \
        -- .venv/bin/python -m tasks.backends.django_tasks.worker

which runs, in each process, `manage.py db_worker --backend django-tasks --queue-name
ocrlab.django-tasks --interval 0.2 --no-startup-delay --no-reload --worker-id HOST:PID`,
after handing process_job its body. Like wsgi.py, this module sets Django up at import,
before it imports the worker side (process_job, the models).
"""

import os
import threading

import django
from django.core.management import call_command

from tasks.supervisor import die_with_parent

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
django.setup()

from apps.jobs.services import worker_name  # noqa: E402 (needs the app registry)
from tasks.backends.base import queue_name, worker_alias  # noqa: E402
from tasks.backends.django_tasks.backend import DjangoTasksBackend  # noqa: E402
from tasks.backends.django_tasks.task import set_handler  # noqa: E402
from tasks.backends.registry import get_backend  # noqa: E402
from tasks.consume import handle_message  # noqa: E402
from tasks.heartbeat import heartbeat_start  # noqa: E402
from tasks.limits import prestart  # noqa: E402

POLL_INTERVAL_S = 0.2  # db_worker polls (no LISTEN): an idle worker's pickup delay


def run_job(job_id: str) -> str:
    """process_job's body in a db_worker process."""
    return handle_message(job_id)


def alias() -> str:
    """The alias in OCRLAB_BACKEND, checked to be a DjangoTasksBackend."""
    name = worker_alias()
    if not isinstance(get_backend(name), DjangoTasksBackend):
        raise RuntimeError(f"OCRLAB_BACKEND={name!r} is not a DjangoTasksBackend alias")
    return name


def main() -> None:
    name = alias()
    set_handler(run_job)
    die_with_parent()
    prestart()  # the workload's child starts while db_worker connects
    stop = threading.Event()
    heartbeat_start(worker=worker_name(), backend=name, stop=stop)  # a live worker
    try:
        call_command(
            "db_worker",
            *("--backend", name, "--queue-name", queue_name(name)),
            *("--interval", str(POLL_INTERVAL_S), "--no-startup-delay", "--no-reload"),
            *("--worker-id", worker_name()),
        )
    finally:
        stop.set()


if __name__ == "__main__":
    main()
