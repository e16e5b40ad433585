"""An in-memory queue for the fast core tests: one process, no broker.

`publish` puts the job id on a queue of this process (one per alias); `open_consumer`
reads it back. Everything else (claim, child process, limits, retries, leases) is the
real thing, so tests/jobs/test_core.py exercises process_job in milliseconds to seconds.
`publish_raw` puts anything on the queue (poison messages).
"""

import queue
import threading
from uuid import UUID

from tasks.backends.base import POLL_S, Backend, Message

_queues: dict[str, queue.Queue] = {}
_lock = threading.Lock()


def _queue(alias: str) -> queue.Queue:
    with _lock:
        return _queues.setdefault(alias, queue.Queue())


class MemoryBackend(Backend):
    supports_publish_raw = True

    def publish(self, job_id: UUID) -> None:
        self.publish_raw(str(job_id))

    def publish_raw(self, raw: object) -> None:
        """Put any message on the queue (tests: poison messages)."""
        _queue(self.alias).put(raw)

    def pending(self) -> int:
        return _queue(self.alias).qsize()

    def open_consumer(self, worker: str) -> "MemoryConsumer":
        return MemoryConsumer(_queue(self.alias))

    def purge(self) -> None:
        q = _queue(self.alias)
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                return


class MemoryConsumer:
    def __init__(self, q: queue.Queue):
        self.q = q
        self.unacked: list[object] = []

    def receive(self, timeout_s: float = POLL_S) -> Message | None:
        try:
            raw = self.q.get(timeout=timeout_s)
        except queue.Empty:
            return None
        self.unacked.append(raw)
        return Message(job_id=raw if isinstance(raw, str) else repr(raw), token=raw)

    def ack(self, message: Message) -> None:
        self.unacked.remove(message.token)

    def nack(self, message: Message) -> None:
        self.unacked.remove(message.token)
        self.q.put(message.token)

    def close(self) -> None:
        for raw in self.unacked:  # a consumer that goes away hands its messages back
            self.q.put(raw)
        self.unacked.clear()
