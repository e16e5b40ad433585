"""One worker process of a plain adapter: consume one job at a time until told to stop.

The supervisor (tasks/supervisor.py) runs `OCRLAB_BACKEND=ALIAS python -m tasks.worker
INDEX` in a session of its own (every worker type learns its alias from that variable).
Django is set up before the models are imported (a process entry point, like wsgi.py).
"""

import logging
import os
import signal
import sys
import threading

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
django.setup()

from apps.jobs.services import worker_name  # noqa: E402
from tasks.backends.base import Message, worker_alias  # noqa: E402
from tasks.backends.registry import get_backend  # noqa: E402
from tasks.consume import consume_loop, handle_message  # noqa: E402
from tasks.heartbeat import heartbeat_start  # noqa: E402
from tasks.limits import prestart  # noqa: E402

log = logging.getLogger("tasks.worker")


def main(alias: str, index: int) -> None:
    """Consume `alias` until SIGTERM or SIGINT, then finish the current job and stop."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    name = worker_name()
    log.info("worker %d (%s) consuming %s", index, name, alias)
    prestart()  # the workload's child process starts while the consumer connects

    def handle(message: Message) -> str:
        return handle_message(message.job_id, worker=name, claimed=message.claimed)

    backend = get_backend(alias)
    beat = heartbeat_start(worker=name, backend=alias, stop=stop)
    try:
        consume_loop(backend.open_consumer(name), handle, stop=stop)
    finally:
        stop.set()
        backend.close()
        beat.join(timeout=5)
    log.info("worker %d (%s) stopped", index, name)


if __name__ == "__main__":
    main(worker_alias(), int(sys.argv[1]))
