"""Celery and Dramatiq: a claim that fails on a database error gives the message back to
the broker (requeue / retry), never acks or dead-letters it."""

import pytest
from celery import Celery
from celery.exceptions import Reject
from django.db import OperationalError, connection
from dramatiq import Middleware, Worker
from dramatiq.brokers.stub import StubBroker

from apps.jobs import services
from tasks.backends.base import queue_name
from tasks.backends.celery import task as celery_task
from tasks.backends.dramatiq import actor as dramatiq_actor
from tasks.backends.dramatiq.broker import make_message

pytestmark = pytest.mark.django_db
JOB_ID = "6f1c6f4e-6a1f-4c39-9a55-3f5f6c1d9e01"


@pytest.fixture
def database_down(monkeypatch):
    """services.job_claim raises OperationalError for the first `outage[0]` calls."""
    calls, outage = [], [1]

    def claim(**kw):
        calls.append(kw["job_id"])
        if len(calls) <= outage[0]:
            raise OperationalError("connection refused: is the server running?")
        return None  # not claimable: the message is then acked as skipped

    monkeypatch.setattr(services, "job_claim", claim)
    monkeypatch.setattr(celery_task, "NACK_PAUSE_S", 0.0)
    monkeypatch.setattr(celery_task, "prestart", lambda: None)
    return calls, outage


def test_celery_task_rejects_with_requeue_on_a_database_error(database_down):
    with pytest.raises(Reject) as raised:
        celery_task.run_process_job(JOB_ID)
    assert raised.value.requeue is True


def test_celery_traces_the_requeue_as_a_reject_not_a_failure(database_down):
    app = Celery("outage-test", set_as_current=False)
    task = celery_task.register(app)
    result = task.apply(args=[JOB_ID])
    assert result.state == "REJECTED"  # the worker's Request then calls reject(requeue=True)


class CloseConnection(Middleware):
    """The worker thread's database connection must not outlive the test."""

    def after_process_message(self, broker, message, *, result=None, exception=None):
        connection.close()


def test_dramatiq_retries_the_message_instead_of_dead_lettering_it(database_down, monkeypatch):
    calls, outage = database_down
    outage[0] = 2
    monkeypatch.setattr(dramatiq_actor, "DB_RETRY_DELAY_S", 0.05)
    broker = StubBroker()
    broker.add_middleware(CloseConnection())
    broker.emit_after("process_boot")
    dramatiq_actor.declare_actor(broker, "dramatiq")
    broker.enqueue(make_message("dramatiq", JOB_ID))
    worker = Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        broker.join(queue_name("dramatiq"), timeout=20_000)
        worker.join()
    finally:
        worker.stop()
        broker.close()
    assert len(calls) == 3  # two outages, then the claim answered (skipped, acked)
    assert broker.dead_letters == []
