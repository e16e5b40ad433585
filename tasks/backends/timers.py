"""A backend's own redelivery timer: what brings a message back while its job still runs.

Every broker has one (RabbitMQ's `consumer_timeout`, a Redis transport's visibility
timeout, librdkafka's `max.poll.interval.ms`, Dramatiq's Redis heartbeat timeout, a
stream's XAUTOCLAIM idle time, a table's lease). A job that outlives it is delivered
again. A backend describes its timer with `redelivery_timer(scaled_s=...)`: the default
users start from (scaled down to `scaled_s` so a bench can show it in seconds) and the
lab's own setting for long jobs, each as worker options, worker environment or a
broker-wide value. The long-jobs bench (apps/bench) runs both; nothing else reads this.
"""

from dataclasses import dataclass, field
from typing import Any

BROKER_RABBITMQ = "rabbitmq"  # a broker-wide timer: set on a private RabbitMQ node
RABBITMQ_CONSUMER_TIMEOUT_S = 1800.0  # RabbitMQ's default consumer_timeout


@dataclass(frozen=True)
class Tuning:
    """One way to run a backend: what its worker processes get."""

    text: str  # for the report: "visibility_timeout = 10 s"
    options: dict[str, Any] = field(default_factory=dict)  # merged into the alias's OPTIONS
    env: dict[str, str] = field(default_factory=dict)  # the workers' environment
    broker_s: float | None = None  # the broker-wide timer, set on a private broker


@dataclass(frozen=True)
class RedeliveryTimer:
    name: str  # "consumer_timeout"
    owner: str  # who applies it: "RabbitMQ broker (broker-wide on 3.10)"
    default: str  # what users start from: "30 min"
    defaults: Tuning  # the default behaviour, timer scaled down
    lab: Tuning  # the lab's settings for long jobs
    log_signs: tuple[str, ...] = ()  # regexes of worker log lines that show it fired
    broker: str = ""  # BROKER_RABBITMQ when only the broker can set the timer


def rabbitmq_consumer_timeout(*, scaled_s: float, lab_s: float) -> RedeliveryTimer:
    """RabbitMQ's consumer_timeout: past it the broker closes the channel (406
    PRECONDITION_FAILED) and requeues the unacked message. RabbitMQ 3.10 has only the
    broker-wide setting; the lab raises it above the longest job."""
    return RedeliveryTimer(
        name="consumer_timeout",
        owner="RabbitMQ broker (broker-wide on 3.10)",
        default=f"{RABBITMQ_CONSUMER_TIMEOUT_S / 60:g} min",
        defaults=Tuning(f"consumer_timeout {scaled_s:g} s", broker_s=scaled_s),
        lab=Tuning(f"consumer_timeout {lab_s:g} s (the lab's, above its limit)", broker_s=lab_s),
        log_signs=(
            r"PRECONDITION_FAILED",
            r"Unrecoverable error",
            r"[Cc]onnection to broker lost",
            r"exited with \S+; restarting",
        ),
        broker=BROKER_RABBITMQ,
    )
