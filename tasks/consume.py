"""One consume loop for every plain adapter, against the `Consumer` contract
(tasks/backends/base.py):

    receive(timeout_s) -> Message | None    next message, or None after timeout_s
    ack(message)                            done with it (after the job is stored)
    nack(message)                           not handled: let the broker deliver it again
    close()                                 leave the group / release connections

`consume_loop` owns receive -> handle(message) -> ack; a handler that raises (database down) is
nacked and retried after a pause, a receive that raises is logged and retried, so a
worker never crash-loops. `handle_message` is the handler every backend uses (the Celery
task and the Dramatiq actor too): a message that names no job (not a UUID, garbage bytes)
or an unknown job is acked and counted, never retried.
"""

import logging
import threading
from collections.abc import Callable
from uuid import UUID

from apps.jobs.models import OcrJob
from tasks import process
from tasks.backends.base import POLL_S, Consumer, Handler, Message

log = logging.getLogger("tasks.consume")
NACK_PAUSE_S = 1.0  # after a failed handle or receive (database or broker down)


def consume_loop(consumer: Consumer, handle: Handler, *, stop: threading.Event) -> None:
    """Receive, handle and ack one message at a time until `stop` is set."""
    try:
        while not stop.is_set():
            try:
                message = consumer.receive(POLL_S)
            except Exception:
                log.exception("receive failed; retrying in %gs", NACK_PAUSE_S)
                stop.wait(NACK_PAUSE_S)
                continue
            if message is not None:
                _deliver(consumer, handle, message, stop)
    finally:
        consumer.close()


def _deliver(consumer: Consumer, handle: Handler, message: Message, stop) -> None:
    try:
        handle(message)
    except Exception:
        log.exception("handling job %s failed; nacked", message.job_id)
        _quietly(consumer.nack, message)
        stop.wait(NACK_PAUSE_S)
        return
    _quietly(consumer.ack, message)


def _quietly(call: Callable[[Message], None], message: Message) -> None:
    try:
        call(message)
    except Exception as exc:  # the message comes back later and is skipped
        log.warning("%s of job %s failed: %s", call.__name__, message.job_id, exc)


def parse_job_id(raw: object) -> UUID | None:
    """The job id a message names, or None when it names none."""
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw).decode("utf-8", errors="replace")
    try:
        return UUID(str(raw).strip())
    except (ValueError, TypeError, AttributeError):
        return None


def handle_message(raw: object, *, worker: str | None = None, claimed: OcrJob | None = None) -> str:
    """Run the job a message names: process_job, or "poison" (acked, counted). `claimed`:
    the row a table queue's consumer claimed already (Message.claimed)."""
    job_id = parse_job_id(raw)
    if job_id is None:
        process.OUTCOMES["poison"] += 1
        log.error(
            "poison message %.80r names no job: acked and dropped (%d so far)",
            raw,
            process.OUTCOMES["poison"],
        )
        return "poison"
    return process.process_job(job_id, worker=worker, claimed=claimed)
