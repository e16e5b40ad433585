"""Dramatiq brokers and messages, one broker per backend alias.

Dramatiq wants a broker before actors are declared, and one process may publish to both
aliases (`dramatiq` on RabbitMQ, `dramatiq-redis`). So nothing global happens at import:
`build_broker(url)` makes a broker per alias, and publishing enqueues a plain Message on
it (`make_message`: no actor needed, so an API process never imports the worker). The
worker entry (worker.py) builds the broker of its alias, makes it the global broker and
declares the actor (actor.py) on it.

Settings for long CPU-heavy jobs: one thread per process, one message prefetched; the
actor never retries (max_retries=0: process_job republishes a retry itself); its time
limit is a backstop above JOB_TIME_LIMIT_S (which process_job enforces by killing the
workload's child process, in any thread) and below RabbitMQ's consumer_timeout (30 min by
default).
"""

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings

from tasks.backends.base import BackendUnavailable, queue_name
from tasks.backends.services import RabbitMQ, Redis, Service

try:  # optional client libraries: this module is imported only when an alias uses them
    import redis
    from dramatiq import Broker, Message
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.errors import DramatiqError
    from pika.exceptions import AMQPError
    from redis.exceptions import RedisError
except ImportError as exc:
    raise BackendUnavailable(
        f"{exc.name} is not installed; `pip install dramatiq[rabbitmq,redis]` "
        "(see requirements.txt)"
    ) from exc

ACTOR_NAME = "ocrlab_process_job"
PREFETCH = 1
# Redis consumers back off up to this between fetches, and with prefetch 1 a running job
# counts as a miss: at Dramatiq's default (1000 ms) the next job waits up to ~1 s.
POLL_MS = 100
TIME_LIMIT_MARGIN_S = 5.0
RABBITMQ_CONSUMER_TIMEOUT_S = 1800.0  # the broker's default
# pika: fail fast when the broker is down (a publish must raise, not hang), and raise
# instead of blocking forever when the broker blocks publishers (memory alarm).
PIKA_FAST_FAIL = {
    "connection_attempts": "1",
    "socket_timeout": "2",
    "stack_timeout": "4",
    "blocked_connection_timeout": "10",
}
REDIS_CONNECT_TIMEOUT_S = 2.0
# What a failed enqueue raises: Dramatiq's errors, pika's, redis-py's, socket errors.
PUBLISH_ERRORS: tuple[type[BaseException], ...] = (OSError, DramatiqError, AMQPError, RedisError)
DEFAULT_MAINTENANCE_CHANCE = 1000  # Dramatiq's: 1 in 1000 Redis commands
DEFAULT_HEARTBEAT_TIMEOUT_S = 60.0  # Dramatiq's
DEFAULT_NAMESPACE = "dramatiq"


def time_limit_s() -> float:
    """The actor's time limit: a backstop above process_job's own JOB_TIME_LIMIT_S."""
    return settings.JOB_TIME_LIMIT_S + TIME_LIMIT_MARGIN_S


REDIS_SCHEMES = ("redis://", "rediss://")


def services_of(url: str) -> tuple[Service, ...]:
    """The broker at `url`: Redis or RabbitMQ."""
    return (Redis(url),) if url.startswith(REDIS_SCHEMES) else (RabbitMQ(url),)


def build_broker(url: str, options: dict | None = None) -> Broker:
    """A RabbitmqBroker (amqp://) or RedisBroker (redis://) for `url`, default middleware.
    On Redis, `options` (the alias's OPTIONS) may set `heartbeat_timeout_s` (Dramatiq's
    60 s: a worker process heartbeats on every command of any of its consumers, so one
    busy job does not silence it), `maintenance_chance` (per million) and `namespace`."""
    if url.startswith(REDIS_SCHEMES):
        opts = options or {}
        heartbeat_s = opts.get("heartbeat_timeout_s", DEFAULT_HEARTBEAT_TIMEOUT_S)
        pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S)
        return RedisBroker(
            client=redis.Redis(connection_pool=pool),
            heartbeat_timeout=int(1000 * heartbeat_s),
            maintenance_chance=int(opts.get("maintenance_chance", DEFAULT_MAINTENANCE_CHANCE)),
            namespace=opts.get("namespace", DEFAULT_NAMESPACE),
        )
    pika_log = logging.getLogger("pika")
    if pika_log.level == logging.NOTSET:  # as Dramatiq's CLI does: pika logs every
        pika_log.setLevel(logging.CRITICAL)  # connection step; publish() raises the cause
    # confirm_delivery: enqueue returns only once RabbitMQ has taken the message.
    return RabbitmqBroker(url=pika_url(url), confirm_delivery=True)


def pika_url(url: str) -> str:
    """Kombu's `amqp://host//` means vhost "/", which pika reads as vhost "": write it as
    %2F, and add the fail-fast connection parameters (the URL's own ones win)."""
    parts = urlsplit(url)
    path = "/%2F" if parts.path in ("", "/", "//") else parts.path
    query = {**PIKA_FAST_FAIL, **dict(parse_qsl(parts.query))}
    return urlunsplit(parts._replace(path=path, query=urlencode(query)))


def make_message(alias: str, job_id: str) -> Message:
    """The message that the actor of `alias` turns back into process_job(job_id)."""
    return Message(
        queue_name=queue_name(alias), actor_name=ACTOR_NAME, args=(job_id,), kwargs={}, options={}
    )
