"""One test body per behaviour, run on every backend against its real broker."""

import os
import signal

import pytest
from django.conf import settings

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from tasks.backends.registry import backend_aliases, get_backend, reset_backends
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
DEAD_URLS = {  # an address where no broker listens
    "redis": "redis://127.0.0.1:1/0",
    "amqp": "amqp://guest:guest@127.0.0.1:1//",
    "kafka": "127.0.0.1:1",
}


# OCRLAB_TEST_BACKENDS=db,redis narrows the run while working on one backend.
# `memory` is in-process only (tests/jobs/test_core.py): no runworker can serve it.
ALIASES = [
    a
    for a in backend_aliases()
    if a in os.environ.get("OCRLAB_TEST_BACKENDS", a).split(",") and a != "memory"
]


@pytest.fixture(params=ALIASES)
def backend(request):
    alias = request.param
    reset_backends()
    get_backend(alias).purge()
    yield alias
    get_backend(alias).purge()
    reset_backends()


def submit(backend: str, count: int = 1, workload: str = "noop") -> list[OcrJob]:
    return [
        services.job_create(
            version="api", backend=backend, document="sample.pdf", workload=workload
        )
        for _ in range(count)
    ]


def statuses(jobs) -> dict[str, int]:
    rows = OcrJob.objects.filter(id__in=[j.id for j in jobs]).values_list("status", flat=True)
    return {s: list(rows).count(s) for s in set(rows)}


def all_finished(jobs):
    return OcrJob.objects.filter(
        id__in=[j.id for j in jobs], status__in=["DONE", "FAILED"]
    ).count() == len(jobs)


def test_noop_jobs_with_two_workers_end_done_exactly_once(backend, start_worker):
    jobs = submit(backend, 20)
    worker = start_worker(backend, workers=2)
    wait_for(
        lambda: all_finished(jobs),
        90,
        message=lambda: f"20 jobs on {backend}: {statuses(jobs)}\n{worker.output()}",
    )
    rows = OcrJob.objects.filter(id__in=[j.id for j in jobs])
    assert statuses(jobs) == {"DONE": 20}
    assert all(row.attempts == 1 for row in rows)
    assert all(row.worker and row.started_at and row.finished_at for row in rows)


def test_killed_worker_job_still_completes(backend, start_worker):
    victim, *others = submit(backend, 3, workload="sleep:2")  # long enough to be killed in
    start_worker(backend, workers=1)
    running = wait_for(
        lambda: OcrJob.objects.filter(id=victim.id, status=JobStatus.RUNNING).first(),
        60,
        message="the first job to start",
    )
    os.kill(int(running.worker.rsplit(":", 1)[1]), signal.SIGKILL)
    jobs = [victim, *others]
    wait_for(lambda: all_finished(jobs), 120, message=f"jobs after SIGKILL on {backend}")
    assert statuses(jobs) == {"DONE": 3}
    assert OcrJob.objects.get(id=victim.id).attempts == 2


def test_always_failing_job_ends_failed_after_attempts(backend, start_worker):
    (job,) = submit(backend, workload="fail")
    start_worker(backend)
    wait_for(lambda: all_finished([job]), 60, message="the failing job to end")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.attempts == settings.JOB_MAX_ATTEMPTS
    assert "always fails" in job.error


def test_jobs_wait_for_a_worker_then_complete(backend, start_worker):
    jobs = submit(backend, 3)
    wait_for(lambda: statuses(jobs) == {"QUEUED": 3}, 10, message="jobs to be queued")
    start_worker(backend)
    wait_for(lambda: all_finished(jobs), 60, message="queued jobs to finish")
    assert statuses(jobs) == {"DONE": 3}


def test_failed_publish_is_republished_by_relay(backend, start_worker, settings):
    conf = settings.JOB_BACKENDS[backend]
    if "url" not in conf.get("OPTIONS", {}):
        pytest.skip(f"{backend}: its queue is a table in the job database; no broker to lose")
    url = conf["OPTIONS"]["url"]
    dead = DEAD_URLS["kafka" if "://" not in url else url.split("://")[0]]
    settings.JOB_BACKENDS = {
        **settings.JOB_BACKENDS,
        backend: {**conf, "OPTIONS": {**conf["OPTIONS"], "url": dead}},
    }
    reset_backends()
    jobs = submit(backend, 2)
    assert statuses(jobs) == {"PENDING": 2}
    reset_backends()
    settings.JOB_BACKENDS = {**settings.JOB_BACKENDS, backend: conf}
    start_worker(backend)
    wait_for(lambda: all_finished(jobs), 60, message="relayed jobs to finish")
    assert statuses(jobs) == {"DONE": 2}


def test_queued_job_whose_message_was_lost_is_sent_again(backend, start_worker):
    from datetime import timedelta

    from django.utils import timezone

    job = services.job_create(
        version="api", backend=backend, document="sample.pdf", workload="noop", publish=False
    )
    long_ago = timezone.now() - timedelta(hours=1)
    services.job_mark_queued(job_id=job.id, at=long_ago)  # "published", but no message
    start_worker(backend)
    wait_for(lambda: all_finished([job]), 60, message="the job with a lost message")
    assert statuses([job]) == {"DONE": 1}


def test_a_job_hung_in_c_code_is_stopped_at_its_hard_limit(backend, start_worker):
    (job,) = submit(backend, workload="hang:600")  # libc sleep(3), like a stuck Tesseract
    worker = start_worker(backend, env={"JOB_TIME_LIMIT_S": "1"})
    wait_for(
        lambda: all_finished([job]),
        90,
        message=lambda: f"the hung job on {backend}: {statuses([job])}\n{worker.output()}",
    )
    job.refresh_from_db()
    assert (job.status, job.error_code) == (JobStatus.FAILED, "timeout")
    assert job.attempts == 2  # a timeout is retried once, then final


def publish_poison(alias: str) -> None:
    """Put a message that names no job on `alias`'s queue, the way its publish would."""
    impl = get_backend(alias)
    if impl.row_is_message or not impl.supports_publish_raw:
        pytest.skip(f"{alias}: the row is the message; no message can name no job")
    impl.publish_raw(b"not-a-job")


def test_a_poison_message_is_dropped_and_the_worker_goes_on(backend, start_worker):
    publish_poison(backend)
    publish_poison(backend)
    jobs = submit(backend, 2)
    worker = start_worker(backend)
    wait_for(
        lambda: all_finished(jobs),
        90,
        message=lambda: f"jobs after poison on {backend}: {statuses(jobs)}\n{worker.output()}",
    )
    assert statuses(jobs) == {"DONE": 2}
    wait_for(lambda: worker.output().count("poison message") >= 2, 30, message="poison logged")
