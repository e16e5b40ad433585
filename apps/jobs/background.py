"""Work an API process does after answering: a few threads fed by `run_soon`.

Publishing a job is one such piece of work: the request commits the row and answers
202 at once, without waiting on the broker and without holding its pooled database
connection while a dead broker times out. What cannot be queued here (too much already
waiting: the broker is down or slow) is simply not done: the job stays PENDING and the
outbox relay sends it. Each task closes the thread's database connection when it ends,
so the pool gets it back.
"""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections, connection

log = logging.getLogger(__name__)
THREADS = 2
QUEUE_MAX = 500  # tasks waiting or running; beyond this run_soon refuses (the relay covers)

_lock = threading.Condition()
_executor: ThreadPoolExecutor | None = None
_in_flight = 0


def run_soon(task: Callable[[], object], *, name: str) -> bool:
    """Run `task` on a background thread; False when QUEUE_MAX tasks already wait."""
    global _executor, _in_flight
    with _lock:
        if _in_flight >= QUEUE_MAX:
            log.warning("%s not queued: %d background tasks already wait", name, _in_flight)
            return False
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="after-response")
        _in_flight += 1
        _executor.submit(_run, task, name)
    return True


def _run(task: Callable[[], object], name: str) -> None:
    global _in_flight
    try:
        close_old_connections()
        task()
    except Exception:
        log.exception("background task %s failed", name)
    finally:
        connection.close()  # back to the pool while the thread idles
        with _lock:
            _in_flight -= 1
            _lock.notify_all()


def drain(timeout_s: float = 30.0) -> bool:
    """Wait until every queued task has run (tests, shutdown); False on timeout."""
    with _lock:
        return _lock.wait_for(lambda: _in_flight == 0, timeout=timeout_s)
