"""The worker entry: `setup_worker`, the broker callable Dramatiq's CLI runs in each of
its worker processes. The command line, for users (runworker runs the same through
`python -m tasks.backends.dramatiq`, see __main__.py, plus the relay, and restarts it):

    OCRLAB_BACKEND=dramatiq dramatiq_queue_prefetch=1 dramatiq_worker_timeout=100 \
        .venv/bin/python -m dramatiq tasks.backends.dramatiq.worker:setup_worker \
        --processes 2 --threads 1 --queues ocrlab.dramatiq --worker-shutdown-timeout 335000

(`--queues` is `<OCRLAB_QUEUE_PREFIX>.<alias>`.) Like wsgi.py, this module sets Django up
at import, before it imports the actor (the worker: process_job, the models). Nothing
imports it but Dramatiq's command line.
"""

import logging
import os
import threading

import django
import dramatiq
import dramatiq.worker

from tasks.backends.base import WORKER_BACKEND_ENV, worker_alias
from tasks.backends.dramatiq.backend import DramatiqBackend
from tasks.backends.dramatiq.broker import (
    POLL_MS,
    PREFETCH,
    RABBITMQ_CONSUMER_TIMEOUT_S,
    time_limit_s,
)
from tasks.backends.registry import get_backend

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
django.setup()

from apps.jobs.services import worker_name  # noqa: E402 (needs the app registry)
from tasks.backends.dramatiq.actor import declare_actor  # noqa: E402
from tasks.heartbeat import heartbeat_start  # noqa: E402

log = logging.getLogger(__name__)
HEARTBEAT_GOODBYE_S = 5.0


def setup_worker() -> None:
    """The CLI's broker callable: the broker and actor of the alias in OCRLAB_BACKEND."""
    # The CLI imports dramatiq.worker before this module, so an env var set here would
    # come too late: set what `dramatiq_queue_prefetch=1` would.
    dramatiq.worker.QUEUE_PREFETCH = PREFETCH
    alias = worker_alias()
    backend = get_backend(alias)
    if not isinstance(backend, DramatiqBackend):
        raise RuntimeError(f"{WORKER_BACKEND_ENV}={alias!r} is not a Dramatiq backend alias")
    _warn_about_settings()
    broker = backend.broker
    dramatiq.set_broker(broker)
    broker.add_middleware(Heartbeat(alias))
    declare_actor(broker, alias)


class Heartbeat(dramatiq.Middleware):
    """Each worker process beats for itself from boot, and says goodbye at shutdown."""

    def __init__(self, alias: str):
        self.alias, self.stop = alias, threading.Event()
        self.thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker) -> None:
        self.thread = heartbeat_start(worker=worker_name(), backend=self.alias, stop=self.stop)

    def before_worker_shutdown(self, broker, worker) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(HEARTBEAT_GOODBYE_S)


def _warn_about_settings() -> None:
    if time_limit_s() >= RABBITMQ_CONSUMER_TIMEOUT_S:
        log.warning(
            "actor time limit %.0fs is above RabbitMQ's default consumer_timeout: "
            "raise it on the broker",
            time_limit_s(),
        )
    if "dramatiq_worker_timeout" not in os.environ:
        log.warning(
            "dramatiq_worker_timeout is not set: on Redis a job may wait ~1 s "
            "after the previous one (set it to %d)",
            POLL_MS,
        )
