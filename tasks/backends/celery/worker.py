"""The worker entry: what `celery -A tasks.backends.celery.worker` loads (Flower too).

It builds the app of one alias, chosen by OCRLAB_BACKEND (like every worker process:
tasks.backends.base.WORKER_BACKEND_ENV), and registers the task on it. runworker runs it
(CeleryBackend.worker_command), restarts it and stops it warmly:

    OCRLAB_BACKEND=rabbit .venv/bin/celery -A tasks.backends.celery.worker worker \
        --pool prefork --concurrency 2 -Q ocrlab.rabbit --without-gossip --without-mingle \
        --without-heartbeat -O fair --loglevel INFO

(`-Q` is `<OCRLAB_QUEUE_PREFIX>.<alias>`.) Like wsgi.py, this module sets Django up at
import, before it imports the task (the worker: process_job, the models). Nothing
imports it but Celery's command line; started by runworker, it stops with its parent.
"""

import logging
import os
import threading

import django
from celery import Celery, signals

from tasks.backends.base import WORKER_BACKEND_ENV, worker_alias
from tasks.backends.celery.backend import CeleryBackend
from tasks.backends.registry import get_backend
from tasks.supervisor import die_with_parent

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
django.setup()

from apps.jobs.services import worker_name  # noqa: E402 (needs the app registry)
from tasks.backends.celery.task import register  # noqa: E402
from tasks.heartbeat import heartbeat_start  # noqa: E402

QUIET_LOGGERS = ("celery.app.trace", "celery.worker.strategy")  # process_job logs the job


def alias_app() -> Celery:
    """The app of the alias in OCRLAB_BACKEND, with the task registered on it."""
    alias = worker_alias()
    backend = get_backend(alias)
    if not isinstance(backend, CeleryBackend):
        raise RuntimeError(f"{WORKER_BACKEND_ENV}={alias!r} is not a Celery backend alias")
    celery_app = backend.app
    register(celery_app)
    return celery_app


@signals.setup_logging.connect
def use_django_logging(loglevel=None, **kwargs) -> None:
    """Keep Django's LOGGING (root at LOG_LEVEL, INFO by default: one line per job from
    process_job) instead of Celery's set-up, whose default WARNING would hide those
    lines; a lower `--loglevel` (DEBUG) still applies."""
    root = logging.getLogger()
    if isinstance(loglevel, int) and loglevel < root.level:
        root.setLevel(loglevel)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@signals.worker_process_init.connect
def announce_worker(**kwargs) -> None:
    """Each pool process beats for itself (threads do not survive the fork)."""
    alias = worker_alias()
    _beat_stop.clear()
    _beat_threads.append(heartbeat_start(worker=worker_name(), backend=alias, stop=_beat_stop))


@signals.worker_process_shutdown.connect
def leave_worker(**kwargs) -> None:
    """The pool process ends: stop beating and delete its row before it goes."""
    _beat_stop.set()
    for thread in _beat_threads:
        thread.join(HEARTBEAT_GOODBYE_S)


HEARTBEAT_GOODBYE_S = 5.0
_beat_stop = threading.Event()
_beat_threads: list[threading.Thread] = []
app = alias_app()
die_with_parent()
