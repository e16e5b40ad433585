"""django-tasks (Django's Tasks API + django-tasks-db's db_worker) and procrastinate:
the two queue libraries whose queue is a table in the job database. OCR through real
workers, a worker SIGKILLed mid-job, purge, the worker commands, and publishers that
never load the worker. (The behaviours every backend shares: test_backends.py.)"""

import os
import signal
import subprocess
import sys

import psutil
import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from procrastinate.contrib.django import app as procrastinate_app

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from tasks.backends.procrastinate.backend import TASK_NAME
from tasks.backends.procrastinate.worker import retry_stalled_jobs
from tasks.backends.registry import get_backend, reset_backends
from tasks.slots import parse
from tests.conftest import ROOT, wait_for

ALIASES = ["django-tasks", "procrastinate"]
WORKER_SIDE = [
    "tasks.consume",
    "tasks.process",
    "tasks.backends.django_tasks.worker",
    "tasks.backends.procrastinate.task",
    "tasks.backends.procrastinate.worker",
]
PUBLISHER = """
import sys, django
django.setup()
from tasks.backends.registry import get_backend
for alias in {aliases!r}:
    get_backend(alias).worker_command(2)
print(sorted(m for m in sys.modules if m in {worker_side!r}))
"""


@pytest.fixture(params=ALIASES)
def alias(request):
    reset_backends()
    get_backend(request.param).purge()
    yield request.param
    get_backend(request.param).purge()
    reset_backends()


def submit(alias: str, workload: str) -> OcrJob:
    return services.job_create(
        version="api", backend=alias, document="sample.pdf", workload=workload
    )


def done_lines(output: str, job: OcrJob) -> int:
    return output.count(f"job {job.id} done")


@pytest.mark.django_db(transaction=True)
def test_sample_pdf_ocr_ends_done_with_two_workers(alias, start_worker):
    job = submit(alias, "ocr")
    worker = start_worker(alias, workers=2)
    wait_for(
        lambda: OcrJob.objects.get(id=job.id).is_finished,
        120,
        message=lambda: f"the OCR job on {alias}\n{worker.output()}",
    )
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.DONE, 1), job.error
    assert job.result_pages == 1 and job.result_text.strip()
    assert done_lines(worker.output(), job) == 1


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_job_finishes_it_exactly_once(alias, start_worker):
    """SIGKILL the process running the job: its lease runs out, the relay sends the job
    again, another slot runs it; the killed attempt stores nothing."""
    job = submit(alias, "sleep:3")
    worker = start_worker(alias, workers=2)
    running = wait_for(
        lambda: OcrJob.objects.filter(id=job.id, status=JobStatus.RUNNING).first(),
        60,
        message="the job to start",
    )
    os.kill(int(running.worker.rsplit(":", 1)[1]), signal.SIGKILL)
    wait_for(
        lambda: OcrJob.objects.get(id=job.id).is_finished,
        60,
        message=lambda: f"the job after SIGKILL on {alias}\n{worker.output()}",
    )
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.DONE, 2)
    assert job.worker != running.worker
    assert done_lines(worker.output(), job) == 1
    # The library's own row of the killed attempt stays "running" (copies the relay sent
    # may still be finishing their skip): nothing of the library took the job back.
    wait_for(lambda: _running_rows(alias, job) == 1, 30, message="one row left running")


def _running_rows(alias: str, job: OcrJob) -> int:
    if alias == "django-tasks":  # db_worker has no recovery: RUNNING for good
        rows = DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING)
        return sum(row.args_kwargs["args"] == [str(job.id)] for row in rows)
    with connection.cursor() as cursor:  # `doing` until the stalled-job sweep retries it
        cursor.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing' "
            "AND args->>'job_id' = %s",
            [str(job.id)],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_procrastinate_sweep_puts_back_the_job_of_a_silent_worker():
    queue = f"{get_backend('procrastinate').queue}-sweep"  # apart from the other tests' jobs
    procrastinate_app.configure_task(TASK_NAME, queue=queue).defer(job_id="not-a-job")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) "
            "VALUES (now() - interval '1 hour') RETURNING id"
        )
        (silent,) = cursor.fetchone()
        cursor.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE queue_name = %s",
            [silent, queue],
        )
    # async_to_sync: the Django connector's queries run on this thread's connection
    assert async_to_sync(retry_stalled_jobs)(queue) == 1
    assert _waiting("procrastinate", queue) == 1
    assert async_to_sync(retry_stalled_jobs)(queue) == 0


@pytest.mark.django_db(transaction=True)
def test_purge_deletes_the_waiting_jobs_of_its_queue_only(alias):
    backend = get_backend(alias)
    backend.publish("00000000-0000-0000-0000-000000000001")
    assert _waiting(alias, backend.queue) == 1
    backend.purge()
    assert _waiting(alias, backend.queue) == 0


def _waiting(alias: str, queue: str) -> int:
    if alias == "django-tasks":
        return DBTaskResult.objects.filter(queue_name=queue, status=TaskResultStatus.READY).count()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = %s AND status = 'todo'",
            [queue],
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("alias_name", ALIASES)
def test_worker_command_is_one_process_per_slot(alias_name, settings):
    command = get_backend(alias_name).worker_command(3)
    argv = command.argv
    slots = parse(argv[argv.index("tasks.slots") + 1 :])
    assert slots.count == 3 and slots.command[1:3] == ["-m", f"{_package(alias_name)}.worker"]
    assert command.stop_timeout_s > slots.stop_timeout > settings.JOB_TIME_LIMIT_S
    assert alias_name in command.env.values()


def _package(alias: str) -> str:
    return f"tasks.backends.{alias.replace('-', '_')}"


def test_publishing_never_imports_the_worker():
    code = PUBLISHER.format(aliases=ALIASES, worker_side=WORKER_SIDE)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ocrproject.settings"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]"]


@pytest.mark.django_db(transaction=True)
def test_no_slot_outlives_a_killed_runworker(start_worker):
    worker = start_worker("procrastinate", workers=2)
    parent = psutil.Process(worker.proc.pid)
    children = wait_for(
        lambda: (procs := parent.children(recursive=True)) and len(procs) >= 5 and procs,
        60,
        message="runworker, tasks.slots, two workers and their workload children",
    )
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"left behind: {[p.cmdline() for p in alive]}"
