"""The Dramatiq actor `ocrlab_process_job(job_id)` -> tasks.consume.handle_message.

Worker side only: the worker entry (worker.py) declares it on the broker of its alias;
publishers enqueue a plain Message by actor name (broker.make_message). The actor is
never retried by Dramatiq (process_job republishes a retry itself), except when the
database cannot be reached: then it raises `Retry`, and `retry_when` lets Dramatiq
enqueue the message again after DB_RETRY_DELAY_S instead of dead-lettering it.
"""

import logging

import dramatiq
from django.db import DatabaseError
from dramatiq.middleware.time_limit import TimeLimitExceeded

from tasks import process
from tasks.backends.dramatiq.broker import ACTOR_NAME, queue_name, time_limit_s
from tasks.consume import handle_message
from tasks.limits import drop_connection

log = logging.getLogger(__name__)
DB_RETRY_DELAY_S = 2.0


def process_job_actor(job_id: str) -> None:
    """Run one job; a Dramatiq time limit is stored on the job (see process.INTERRUPTS).
    Raises dramatiq.Retry when the database cannot be reached."""
    try:
        handle_message(job_id)
    except DatabaseError as exc:
        log.warning("job %s: database unavailable (%s); message retried", job_id, exc)
        drop_connection()
        raise dramatiq.Retry(str(exc), delay=int(DB_RETRY_DELAY_S * 1000)) from exc


def retry_when(retries: int, exception: BaseException) -> bool:
    """Dramatiq retries only what the actor asked for (a database outage)."""
    return isinstance(exception, dramatiq.Retry)


def declare_actor(broker: dramatiq.Broker, alias: str) -> dramatiq.Actor:
    """Declare the actor on `broker`, reading `alias`'s queue. Dramatiq's time limit
    interrupts the job like process_job's own, so it is stored as one."""
    if TimeLimitExceeded not in process.INTERRUPTS:
        process.INTERRUPTS.append(TimeLimitExceeded)
    # dramatiq's overloads omit the actor(fn, **options) call it accepts at run time
    return dramatiq.actor(  # type: ignore[call-overload]
        process_job_actor,
        broker=broker,
        actor_name=ACTOR_NAME,
        queue_name=queue_name(alias),
        max_retries=0,
        retry_when=retry_when,
        time_limit=int(time_limit_s() * 1000),
    )
