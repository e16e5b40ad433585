"""README "How to add a backend", kept honest: a minimal backend written here (a Redis list),
registered by a settings override of JOB_BACKENDS, runs a noop job end to end through the
generic consume loop, shows up in readiness, and writes poison through publish_raw."""

import threading
from uuid import UUID

import pytest
import redis
from django.conf import settings

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from apps.ops import checks
from tasks import process
from tasks.backends.base import Backend, Message
from tasks.backends.registry import get_backend
from tasks.backends.services import Redis, Service
from tasks.consume import consume_loop, handle_message

pytestmark = pytest.mark.django_db
ALIAS = "example-list"
DOTTED = "tests.jobs.test_add_a_backend.RedisListBackend"


class RedisListBackend(Backend):
    """LPUSH to publish, BRPOP to receive. No ack: a worker killed mid-job loses the
    message, and the relay's lease and QUEUED-overdue passes bring the job back."""

    supports_publish_raw = True
    client_packages = ("redis",)

    @property
    def key(self) -> str:
        return f"{settings.QUEUE_PREFIX}:example:{self.alias}"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.options["url"], socket_timeout=5)

    def publish(self, job_id: UUID) -> None:
        self.publish_raw(str(job_id).encode())

    def publish_raw(self, payload: bytes) -> None:
        self.client().lpush(self.key, payload)

    def open_consumer(self, worker: str) -> "ListConsumer":
        return ListConsumer(self.client(), self.key)

    def purge(self) -> None:
        self.client().delete(self.key)

    def services(self) -> tuple[Service, ...]:
        return (Redis(self.options["url"]),)


class ListConsumer:
    def __init__(self, client: redis.Redis, key: str):
        self.client, self.key = client, key

    def receive(self, timeout_s: float) -> Message | None:
        reply = self.client.brpop([self.key], timeout=max(1, int(timeout_s)))
        return None if reply is None else Message(job_id=reply[1].decode(errors="replace"))

    def ack(self, message: Message) -> None:
        """BRPOP took it off the list already."""

    def nack(self, message: Message) -> None:
        self.client.rpush(self.key, message.job_id)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def example(settings):  # pytest-django's fixture: the override ends with the test
    settings.JOB_BACKENDS = {
        **settings.JOB_BACKENDS,
        ALIAS: {"BACKEND": DOTTED, "OPTIONS": {"url": settings.REDIS_URL}},
    }
    backend = get_backend(ALIAS)
    backend.purge()
    yield backend
    backend.purge()


def drain(backend: Backend, expected: int) -> list[str]:
    """The generic consume loop, until `expected` messages were handled."""
    outcomes: list[str] = []
    stop = threading.Event()

    def handle(message: Message) -> str:
        outcomes.append(handle_message(message.job_id, worker="test", claimed=message.claimed))
        if len(outcomes) >= expected:
            stop.set()
        return outcomes[-1]

    timer = threading.Timer(60, stop.set)  # bounded, whatever happens
    timer.start()
    try:
        consume_loop(backend.open_consumer("test"), handle, stop=stop)
    finally:
        timer.cancel()
    return outcomes


def test_a_new_backend_runs_a_noop_job_end_to_end(example):
    job = services.job_create(
        version="api", backend=ALIAS, document="sample.pdf", workload="noop", publish=False
    )
    assert services.job_publish(job_id=job.id, backend=ALIAS)
    assert OcrJob.objects.get(id=job.id).status == JobStatus.QUEUED  # published, then marked
    assert drain(example, 1) == ["done"]
    job = OcrJob.objects.get(id=job.id)
    assert (job.status, job.attempts) == (JobStatus.DONE, 1)


def test_a_new_backend_is_asked_not_named(example):
    assert isinstance(example.broker_service(), Redis)
    deps = {dep.name: dep for dep in checks.dependencies()}
    assert ALIAS in deps["redis"].backends
    before = process.OUTCOMES["poison"]
    example.publish_raw(b"not-a-job")
    assert drain(example, 1) == ["poison"]
    assert process.OUTCOMES["poison"] == before + 1
