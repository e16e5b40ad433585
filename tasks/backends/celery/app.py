"""The Celery apps: one per backend alias (`rabbit` = V5 on RabbitMQ, `celery-redis`).

One process may publish to both aliases, so `make_app(alias, url)` builds an app of its
own for each (the backend keeps it). Publishing needs no task: the backend sends
`TASK_NAME` by name, so an API process never imports the worker; the worker entry
(tasks/backends/celery/worker.py) registers the task on the app of its alias.

Settings for long CPU-heavy jobs: the message is acked after the job is stored and
requeued if the worker process dies (acks_late, reject_on_worker_lost); each prefork
process reserves one message at a time (prefetch multiplier 1); Celery's time limits sit
above process_job's own JOB_TIME_LIMIT_S as a backstop; no result backend (the OcrJob
row is the result); on Redis the visibility timeout is far above the longest job.

RabbitMQ's consumer_timeout (default 30 min) must stay above the hard time limit. Before
RabbitMQ 3.12 it is only a broker setting (rabbitmq.conf `consumer_timeout = <ms>`, or at
run time `rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout, <ms>).'`); the
per-consumer `x-consumer-timeout` argument set here takes effect on 3.12 and later and is
ignored by older brokers (3.10 here). A warning is logged when the limit is too long.
"""

import logging

from django.conf import settings

from tasks.backends.base import BackendUnavailable, queue_name
from tasks.backends.services import RabbitMQ, Redis, Service

try:  # optional client libraries: this module is imported only when an alias uses them
    from celery import Celery
    from kombu import Exchange, Queue
    from kombu.exceptions import OperationalError
except ImportError as exc:
    raise BackendUnavailable(
        f"{exc.name} is not installed; `pip install celery` (see requirements.txt)"
    ) from exc

log = logging.getLogger(__name__)

TASK_NAME = "ocrlab.process_job"
CONNECT_TIMEOUT_S = 2.0  # publish fails within this when the broker is down
SOFT_LIMIT_MARGIN_S = 15.0  # process_job stops the job at JOB_TIME_LIMIT_S; these are
HARD_LIMIT_MARGIN_S = 30.0  # Celery's backstops (soft raises, hard kills the process)
RABBITMQ_CONSUMER_TIMEOUT_S = 1800.0  # the broker's default
DB_REUSE_MAX_TASKS = 1000
# What a failed send_task raises (kombu's connection errors, sockets).
PUBLISH_ERRORS: tuple[type[BaseException], ...] = (OperationalError, OSError)


def make_app(alias: str, url: str, options: dict | None = None) -> Celery:
    """A Celery app for one alias: its broker URL and its queue (no task registered).
    `options` (the alias's OPTIONS) may set `visibility_timeout_s` (Redis only)."""
    app = Celery(f"ocrlab-{alias}", set_as_current=False)
    app.conf.update(app_config(alias, url, options or {}))
    return app


def app_config(alias: str, url: str, options: dict | None = None) -> dict:
    """Celery settings for one alias (see the module docstring for the why)."""
    queue = queue_name(alias)
    hard_limit_s = settings.JOB_TIME_LIMIT_S + HARD_LIMIT_MARGIN_S
    opts = options or {}
    visibility_s = opts.get("visibility_timeout_s", lab_visibility_timeout_s())
    return {
        "broker_url": url,
        "broker_connection_timeout": CONNECT_TIMEOUT_S,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options(
            url, float(visibility_s), opts.get("restore_every_s")
        ),
        "task_queues": [_queue(queue, url, hard_limit_s)],
        "task_default_queue": queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "task_ignore_result": True,
        "task_publish_retry": False,
        "task_soft_time_limit": settings.JOB_TIME_LIMIT_S + SOFT_LIMIT_MARGIN_S,
        "task_time_limit": hard_limit_s,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": False,
        # A lost broker connection redelivers the message; the lease makes the copy a
        # skip, so let the running job finish and store its result.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
        # Celery's Django fix-up closes every DB connection before and after each task
        # unless this is set: a new Postgres connection per job. process_job's
        # close_old_connections() already honours CONN_MAX_AGE and drops broken ones.
        "CELERY_DB_REUSE_MAX": DB_REUSE_MAX_TASKS,
    }


REDIS_SCHEMES = ("redis://", "rediss://")
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


def services_of(url: str) -> tuple[Service, ...]:
    """The broker at `url`: Redis or RabbitMQ."""
    return (Redis(url),) if url.startswith(REDIS_SCHEMES) else (RabbitMQ(url),)


def lab_visibility_timeout_s() -> float:
    """Redis: unacked messages come back after this; well above the longest job."""
    return max(3600.0, 2 * (settings.JOB_TIME_LIMIT_S + HARD_LIMIT_MARGIN_S))


def lab_consumer_timeout_s() -> float:
    """RabbitMQ: what the broker's consumer_timeout must exceed (x-consumer-timeout)."""
    return settings.JOB_TIME_LIMIT_S + 2 * HARD_LIMIT_MARGIN_S


def transport_options(
    url: str, visibility_timeout_s: float, restore_every_s: float | None = None
) -> dict:
    """Redis: the visibility timeout; `restore_every_s` sweeps for messages past it that
    often (kombu's default sweep: every 10th call of a 10 s timer, ~100 s)."""
    if not url.startswith(REDIS_SCHEMES):
        return {}
    options = {
        "visibility_timeout": visibility_timeout_s,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
    }
    if restore_every_s:
        options |= {"unacked_restore_interval": restore_every_s, "unacked_restore_throttle": 1}
    return options


def _queue(name: str, url: str, hard_limit_s: float) -> Queue:
    args = None
    if url.startswith(AMQP_SCHEMES):
        args = {"x-consumer-timeout": int(lab_consumer_timeout_s() * 1000)}
        if hard_limit_s >= RABBITMQ_CONSUMER_TIMEOUT_S:
            log.warning(
                "Celery hard time limit %.0fs is above RabbitMQ's default "
                "consumer_timeout (%.0fs): raise it on the broker (see %s)",
                hard_limit_s,
                RABBITMQ_CONSUMER_TIMEOUT_S,
                __name__,
            )
    return Queue(name, Exchange(name, type="direct"), routing_key=name, consumer_arguments=args)
