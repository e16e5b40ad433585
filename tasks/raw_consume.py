"""A raw consumer process: receive and ack noop messages of one alias's raw queue
(Backend.raw_queue), never a job row. The bench's raw family starts W of these:

    .venv/bin/python -m tasks.raw_consume ALIAS [--max-s 300]

It prints `ready` once its consumer is open, then `<acked> <unix time of the last ack>`
whenever its count changed (at most every REPORT_EVERY_S, and at once when idle). A line
`pause` on stdin holds it (it prints `paused`; a message received meanwhile is acked after
`go`), `go` lets it run again: so the bench can queue a backlog first. It stops on SIGTERM,
when its stdin closes (the bench is gone) or after --max-s seconds. Like wsgi.py,
this module sets Django up at import.
"""

import argparse
import os
import signal
import sys
import threading
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrproject.settings")
django.setup()

from tasks.backends.registry import get_backend  # noqa: E402 (needs the app registry)

RECEIVE_S = 0.2
REPORT_EVERY_S = 0.02


class Counter:
    """Acks so far and when the last one happened; printed for the bench."""

    def __init__(self):
        self.acked, self.last_ack, self.reported, self.reported_at = 0, 0.0, 0, 0.0

    def ack(self) -> None:
        self.acked += 1
        self.last_ack = time.time()

    def report(self, *, idle: bool) -> None:
        now = time.monotonic()
        if self.acked != self.reported and (idle or now - self.reported_at >= REPORT_EVERY_S):
            print(f"{self.acked} {self.last_ack:.6f}", flush=True)
            self.reported, self.reported_at = self.acked, now


class Gate:
    """Open unless the bench said `pause`; `stop` opens it for good."""

    def __init__(self, stop: threading.Event):
        self.stop, self.running = stop, threading.Event()
        self.running.set()

    def follow(self, stream) -> None:
        for line in stream:
            if line.strip() == "pause":
                self.running.clear()
                print("paused", flush=True)
            elif line.strip() == "go":
                self.running.set()
        self.close()  # stdin closed: the bench is gone

    def close(self) -> None:
        self.stop.set()
        self.running.set()

    def wait(self) -> None:
        self.running.wait()


def consume(alias: str, max_s: float, stop: threading.Event, gate: Gate) -> None:
    """Receive and ack until `stop` or `max_s`."""
    queue = get_backend(alias).raw_queue()
    if queue is None:
        raise SystemExit(f"{alias}: no raw queue")
    consumer = queue.open_consumer(f"raw-{os.getpid()}")
    print("ready", flush=True)
    counter, deadline = Counter(), time.monotonic() + max_s
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            gate.wait()
            message = consumer.receive(RECEIVE_S)
            gate.wait()
            if message is not None:
                consumer.ack(message)
                counter.ack()
            counter.report(idle=message is None)
    finally:
        consumer.close()
        queue.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("alias")
    parser.add_argument("--max-s", type=float, default=300.0)
    args = parser.parse_args()
    stop = threading.Event()
    gate = Gate(stop)
    signal.signal(signal.SIGTERM, lambda *_: gate.close())
    threading.Thread(target=gate.follow, args=(sys.stdin,), daemon=True).start()
    consume(args.alias, args.max_s, stop, gate)


if __name__ == "__main__":
    main()
