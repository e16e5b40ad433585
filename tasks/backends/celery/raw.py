"""Celery's raw queue: task messages on `<QUEUE_PREFIX>.raw.<alias>`, consumed at kombu
level (Celery's own transport), acked without running a task: what the broker and its
client cost, without Celery's worker machinery. Prefetch 1, as the lab's workers."""

from tasks.backends.base import Message, TwinRawQueue

PREFETCH = 1


class CeleryRawQueue(TwinRawQueue):
    """Published with `send_task` by the twin backend; consumed with a kombu SimpleQueue."""

    def open_consumer(self, name: str) -> "KombuRawConsumer":
        app = self.twin.app  # type: ignore[attr-defined]
        return KombuRawConsumer(app, self.twin.queue)  # type: ignore[attr-defined]


class KombuRawConsumer:
    """get / ack on the queue Celery declares for the alias (same arguments)."""

    def __init__(self, app, queue: str):
        self.conn = app.connection_for_read()
        self.simple = self.conn.SimpleQueue(app.amqp.queues[queue])
        self.simple.consumer.qos(prefetch_count=PREFETCH)

    def receive(self, timeout_s: float) -> Message | None:
        try:
            message = self.simple.get(block=True, timeout=timeout_s)
        except self.simple.Empty:
            return None
        return Message(job_id="", token=message)

    def ack(self, message: Message) -> None:
        message.token.ack()

    def nack(self, message: Message) -> None:
        message.token.requeue()

    def close(self) -> None:
        self.simple.close()
        self.conn.release()
