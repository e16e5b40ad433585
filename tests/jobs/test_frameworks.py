"""Celery and Dramatiq specifics: their settings for long jobs, fast-failing publishes,
publishers that never load the worker, time limits enforced inside their workers, and no
worker outliving runworker."""

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from tasks.backends.base import BackendUnavailable
from tasks.backends.celery.app import app_config
from tasks.backends.celery.backend import CeleryBackend
from tasks.backends.dramatiq.backend import DramatiqBackend
from tasks.backends.dramatiq.broker import pika_url
from tasks.backends.registry import get_backend, reset_backends
from tasks.supervisor import CommandWorkers
from tests.conftest import ROOT, wait_for

FRAMEWORKS = {  # alias -> (backend class, dead broker URL)
    "rabbit": (CeleryBackend, "amqp://guest:guest@127.0.0.1:1//"),
    "celery-redis": (CeleryBackend, "redis://127.0.0.1:1/0"),
    "dramatiq": (DramatiqBackend, "amqp://guest:guest@127.0.0.1:1//"),
    "dramatiq-redis": (DramatiqBackend, "redis://127.0.0.1:1/0"),
}
ONE_PER_FRAMEWORK = ["rabbit", "dramatiq"]
# The worker side: what a publisher (an API process) must never import.
WORKER_MODULES = [
    "tasks.consume",
    "tasks.process",
    "tasks.backends.celery.task",
    "tasks.backends.celery.worker",
    "tasks.backends.dramatiq.actor",
    "tasks.backends.dramatiq.worker",
]
PUBLISHER = """
import sys, django
django.setup()
from django.conf import settings
from tasks.backends.base import BackendUnavailable
from tasks.backends.registry import get_backend
for alias, url in {urls!r}.items():
    backend = type(get_backend(alias))(alias, {{"url": url}})
    try:
        backend.publish("00000000-0000-0000-0000-000000000000")
    except BackendUnavailable:
        pass
    backend.worker_command(2)
print(sorted(m for m in sys.modules if m in {worker_modules!r}))
"""


def test_pika_url_reads_kombu_vhost_and_fails_fast():
    url = pika_url("amqp://u:p@host:5672//")
    assert url.startswith("amqp://u:p@host:5672/%2F?")
    assert "connection_attempts=1" in url and "socket_timeout=2" in url
    assert "heartbeat=5" in pika_url("amqp://u:p@host/vh?heartbeat=5")


def test_celery_settings_suit_long_cpu_jobs(settings):
    rabbit = app_config("rabbit", "amqp://guest:guest@127.0.0.1:5672//")
    assert rabbit["task_acks_late"] and rabbit["task_reject_on_worker_lost"]
    assert rabbit["worker_prefetch_multiplier"] == 1 and rabbit["task_ignore_result"]
    assert rabbit["task_time_limit"] > rabbit["task_soft_time_limit"] > settings.JOB_TIME_LIMIT_S
    assert rabbit["task_default_queue"] == f"{settings.QUEUE_PREFIX}.rabbit"
    redis = app_config("celery-redis", "redis://127.0.0.1:6379/0")
    visibility_s = redis["broker_transport_options"]["visibility_timeout"]
    assert visibility_s > redis["task_time_limit"]


@pytest.mark.parametrize("alias", FRAMEWORKS)
def test_publish_to_a_dead_broker_raises_fast(alias):
    cls, dead_url = FRAMEWORKS[alias]
    backend = cls(alias, {"url": dead_url})
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        backend.publish("00000000-0000-0000-0000-000000000000")
    assert time.monotonic() - started < 5
    backend.close()


def test_publishing_never_imports_the_worker():
    """API -> services -> backends: a fresh process that resolves, publishes with and
    asks the worker command of every framework alias loads none of the worker side."""
    urls = {alias: dead_url for alias, (_, dead_url) in FRAMEWORKS.items()}
    code = PUBLISHER.format(urls=urls, worker_modules=WORKER_MODULES)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ocrproject.settings"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]"]


@pytest.mark.parametrize("alias", FRAMEWORKS)
def test_worker_command_names_the_worker_entry_modules(alias):
    argv = get_backend(alias).worker_command(2).argv
    if "celery" in argv:
        modules = [argv[argv.index("-A") + 1]]
    else:
        modules = [argv[argv.index("-m") + 1], argv[argv.index("-m") + 2].partition(":")[0]]
    assert modules and all(importlib.util.find_spec(m) for m in modules), modules


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("alias", ONE_PER_FRAMEWORK)
def test_time_limit_fails_the_job_inside_the_framework_worker(alias, start_worker):
    reset_backends()
    get_backend(alias).purge()
    job = services.job_create(version="api", backend=alias, document="x.pdf", workload="cpu:60")
    start_worker(alias, env={"JOB_TIME_LIMIT_S": "1"})
    wait_for(lambda: OcrJob.objects.get(id=job.id).is_finished, 60, message="the time limit")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.attempts == 2
    assert "time limit" in job.error


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("alias", ONE_PER_FRAMEWORK)
def test_no_framework_process_outlives_a_killed_runworker(alias, start_worker):
    worker = start_worker(alias, workers=2)
    parent = psutil.Process(worker.proc.pid)
    children = wait_for(
        lambda: _at_least(parent.children(recursive=True), 3),
        30,
        message="the framework's processes",
    )
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"left behind: {[p.pid for p in alive]}"


def _at_least(procs: list, count: int) -> list | None:
    return procs if len(procs) >= count else None


def test_command_workers_restart_a_dead_command_and_stop_it(tmp_path):
    pids = tmp_path / "pids"
    code = (
        "import os, sys, time\n"
        "open(sys.argv[1], 'a').write(f'{os.getpid()}\\n')\n"
        "time.sleep(float(sys.argv[2]))\n"
    )
    stop = threading.Event()
    runner = CommandWorkers("probe", [sys.executable, "-c", code, str(pids), "0.2"], {}, 5)
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) >= 2, 10, message="a restart")
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_command_workers_stop_sends_one_sigterm(tmp_path):
    out = tmp_path / "signals"
    code = (
        "import signal, sys, time\n"
        "def on_term(*_):\n"
        "    open(sys.argv[1], 'a').write('TERM\\n')\n"
        "    time.sleep(0.5)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "while True:\n"
        "    time.sleep(0.1)\n"
    )
    stop = threading.Event()
    runner = CommandWorkers("probe", [sys.executable, "-c", code, str(out)], {}, 5)
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    time.sleep(1)
    stop.set()
    thread.join(10)
    assert out.read_text().split() == ["TERM"]
