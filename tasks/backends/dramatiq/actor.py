"""The Dramatiq actor `ocrlab_process_job(job_id)` -> tasks.consume.handle_message.

Worker side only: the worker entry (worker.py) declares it on the broker of its alias;
publishers enqueue a plain Message by actor name (broker.make_message).
"""

import dramatiq
from dramatiq.middleware.time_limit import TimeLimitExceeded

from tasks import process
from tasks.backends.dramatiq.broker import ACTOR_NAME, queue_name, time_limit_s
from tasks.consume import handle_message


def process_job_actor(job_id: str) -> None:
    """Run one job; a Dramatiq time limit is stored on the job (see process.INTERRUPTS)."""
    handle_message(job_id)


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
        time_limit=int(time_limit_s() * 1000),
    )
