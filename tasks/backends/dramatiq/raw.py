"""Dramatiq's raw queue: Dramatiq messages on `<QUEUE_PREFIX>.raw.<alias>`, consumed with
the broker's own consumer (`Broker.consume`) and acked without running an actor: what the
broker and Dramatiq's client cost, without its worker threads. Prefetch 1, as the lab's."""

from tasks.backends.base import Message, TwinRawQueue
from tasks.backends.dramatiq.broker import POLL_MS, PREFETCH


class DramatiqRawQueue(TwinRawQueue):
    """Published by the twin backend (`enqueue`); consumed with `broker.consume`."""

    def open_consumer(self, name: str) -> "BrokerRawConsumer":
        broker = self.twin.broker  # type: ignore[attr-defined]
        return BrokerRawConsumer(broker.consume(self.twin.queue, PREFETCH, POLL_MS))  # type: ignore[attr-defined]


class BrokerRawConsumer:
    """next() on Dramatiq's consumer: a message, or None after its timeout."""

    def __init__(self, consumer):
        self.consumer = consumer

    def receive(self, timeout_s: float) -> Message | None:
        proxy = next(self.consumer)
        return None if proxy is None else Message(job_id=proxy.message_id, token=proxy)

    def ack(self, message: Message) -> None:
        self.consumer.ack(message.token)

    def nack(self, message: Message) -> None:
        self.consumer.nack(message.token)

    def close(self) -> None:
        self.consumer.close()
