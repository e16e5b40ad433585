"""The Dramatiq actor `ocrlab_process_job(job_id)` -> tasks.process.process_job.

Dramatiq wants the broker before actors are declared, and one process may publish to
both aliases (`dramatiq` on RabbitMQ, `dramatiq-redis`). So nothing happens at import:
`build_broker(url)` makes a broker per alias; publishing enqueues a plain Message on it
(no actor needed); a worker process calls `setup_worker`, which builds the broker of the
alias in OCRLAB_DRAMATIQ_BACKEND, makes it the global broker and declares the actor on
it. The CLI, for users (runworker runs the same, plus the relay, and restarts it):

    OCRLAB_DRAMATIQ_BACKEND=dramatiq dramatiq_queue_prefetch=1 dramatiq_worker_timeout=100 \
        .venv/bin/python -m dramatiq tasks.dramatiq_actors:setup_worker --processes 2 \
        --threads 1 --queues ocrlab.dramatiq --worker-shutdown-timeout 335000

(`--queues` is `<OCRLAB_QUEUE_PREFIX>.<alias>`.) `python -m tasks.dramatiq_actors ARGS`
is the same CLI, tied to its parent's life (runworker uses it).

Settings for long CPU-heavy jobs: one thread per process, one message prefetched; the
actor never retries (max_retries=0: process_job republishes a retry itself); its time
limit is a backstop above JOB_TIME_LIMIT_S (which process_job enforces by killing the
workload's child process, in any thread) and below RabbitMQ's consumer_timeout (30 min by default).
"""

import logging
import os
import sys
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
from dramatiq.middleware.time_limit import TimeLimitExceeded

log = logging.getLogger(__name__)

ALIAS_ENV = "OCRLAB_DRAMATIQ_BACKEND"
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


def queue_name(alias: str) -> str:
    from django.conf import settings

    return f"{settings.QUEUE_PREFIX}.{alias}"


def time_limit_s() -> float:
    from django.conf import settings

    return settings.JOB_TIME_LIMIT_S + TIME_LIMIT_MARGIN_S


def build_broker(url: str) -> dramatiq.Broker:
    """A RabbitmqBroker (amqp://) or RedisBroker (redis://) for `url`, default middleware."""
    if url.startswith(("redis://", "rediss://")):
        import redis
        from dramatiq.brokers.redis import RedisBroker

        pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S)
        return RedisBroker(client=redis.Redis(connection_pool=pool))
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

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


def make_message(alias: str, job_id: str) -> dramatiq.Message:
    """The message that the actor of `alias` turns back into process_job(job_id)."""
    return dramatiq.Message(
        queue_name=queue_name(alias), actor_name=ACTOR_NAME, args=(job_id,), kwargs={}, options={}
    )


def process_job_actor(job_id: str) -> None:
    """Run one job; a Dramatiq time limit is stored on the job (see process.INTERRUPTS)."""
    from tasks import process
    from tasks.consume import handle_message

    if TimeLimitExceeded not in process.INTERRUPTS:
        process.INTERRUPTS.append(TimeLimitExceeded)
    handle_message(job_id)


def declare_actor(broker: dramatiq.Broker, alias: str) -> dramatiq.Actor:
    """Declare the actor on `broker`, reading `alias`'s queue."""
    # dramatiq's overloads omit the actor(fn, **options) call it accepts at run time
    return dramatiq.actor(  # type: ignore[call-overload]
        process_job_actor,
        broker=broker,
        actor_name=ACTOR_NAME,
        queue_name=queue_name(alias),
        max_retries=0,
        time_limit=int(time_limit_s() * 1000),
    )


def setup_worker() -> None:
    """The CLI's broker callable: Django, then the broker and actor of OCRLAB_DRAMATIQ_BACKEND."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
    import django

    django.setup()
    import dramatiq.worker
    from django.conf import settings

    # The CLI imports dramatiq.worker before this module, so an env var set here would
    # come too late: set what `dramatiq_queue_prefetch=1` would.
    dramatiq.worker.QUEUE_PREFETCH = PREFETCH
    alias = os.environ.get(ALIAS_ENV, "dramatiq")
    conf = settings.JOB_BACKENDS.get(alias, {})
    if not conf.get("BACKEND", "").endswith("DramatiqBackend"):
        raise RuntimeError(f"{ALIAS_ENV}={alias!r} is not a Dramatiq backend alias")
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
    broker = build_broker(conf["OPTIONS"]["url"])
    dramatiq.set_broker(broker)
    declare_actor(broker, alias)


def main() -> int:
    """`python -m tasks.dramatiq_actors ARGS`: the Dramatiq CLI, stopped with its parent."""
    from dramatiq.cli import main as dramatiq_main

    from tasks.supervisor import die_with_parent

    die_with_parent()
    return dramatiq_main()


if __name__ == "__main__":
    sys.exit(main())
