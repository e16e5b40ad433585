"""Fixtures on real services: the test database, real brokers, real worker processes.

Worker processes are started as `manage.py runworker` subprocesses against the test
database, so tests that use them need `@pytest.mark.django_db(transaction=True)`.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

from apps.ops import launch

ROOT = launch.ROOT


def wait_for(predicate, timeout: float, interval: float = 0.1, message="condition"):
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout`.
    `message` may be a callable, evaluated only on failure (e.g. a worker's log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(
        f"timed out after {timeout}s waiting for {message() if callable(message) else message}"
    )


def test_database_url() -> str:
    """DATABASE_URL of the test database pytest-django made (for child processes)."""
    from django.conf import settings
    from django.db import connection

    return settings.DATABASE_URL.rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]


@pytest.fixture
def make_api_user(db):
    """make_api_user("alice", bench=False, staff=False, perms=("jobs.view_ocrjob",))
    -> (user, token key)."""
    from django.contrib.auth.models import Permission

    from apps.jobs.management.commands.ensure_api_token import ensure_api_user

    def make(username: str, *, bench: bool = False, staff: bool = False, perms=()):
        token = ensure_api_user(username=username, bench=bench)
        if staff:
            token.user.is_staff = True
            token.user.save(update_fields=["is_staff"])
        for perm in perms:
            app_label, codename = perm.split(".")
            token.user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return token.user, token.key

    return make


@pytest.fixture
def api_token(make_api_user, monkeypatch) -> str:
    """The `bench` user's token (bench permission, like `make prepare` makes it), also set
    as OCRLAB_API_TOKEN so api_auth_headers(), the bench and child processes send it."""
    _, key = make_api_user("bench", bench=True)
    monkeypatch.setenv("OCRLAB_API_TOKEN", key)
    return key


@pytest.fixture
def auth_headers(api_token) -> dict[str, str]:
    from ocrproject.env import api_auth_headers

    return api_auth_headers()


@pytest.fixture
def api_client(auth_headers):
    """Django's test client, authenticated as the `bench` user with its token."""
    from django.test import Client

    return Client(headers=auth_headers)


@pytest.fixture
def subprocess_env(db, api_token):
    """Environment for child processes: same test database and queue names as the test,
    and the `bench` user's token (OCRLAB_API_TOKEN)."""
    return {**os.environ, "DATABASE_URL": test_database_url(), "PYTHONUNBUFFERED": "1"}


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen, log: Path):
        self.proc, self.log = proc, log

    def stop(self, timeout_s: float = 30) -> int:
        """Like runworker's own stop: one SIGTERM (warm shutdown), then SIGKILL the group."""
        launch.stop_group(self.proc, timeout_s=timeout_s, leader_only=True)
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_worker(subprocess_env, tmp_path):
    """start_worker("redis", workers=2, workload=None) -> WorkerProcess (stopped at teardown)."""
    started: list[WorkerProcess] = []

    def start(backend: str, workers: int = 1, workload: str | None = None, env=None):
        log = tmp_path / f"worker-{backend}-{len(started)}.log"
        proc = launch.start(
            launch.worker_command(backend, workers, workload),
            log=log,
            env={**subprocess_env, **(env or {})},
        )
        started.append(WorkerProcess(proc, log))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()
        if os.getenv("OCRLAB_SHOW_WORKER_LOGS"):
            print(worker.output())


@pytest.fixture(scope="session")
def ocr_servers(tmp_path_factory):
    """Two real OCR servers (gunicorn), shared by the session. Yields their base URLs."""
    with launch.ServerGroup(tmp_path_factory.mktemp("ocr-servers")) as group:
        yield group.start_ocr_servers([launch.free_port(), launch.free_port()])


@pytest.fixture(scope="session")
def api_server(django_db_setup, django_db_blocker, ocr_servers, tmp_path_factory):
    """The real API (uvicorn, ASGI) on the test database, calling the session's OCR servers."""
    with django_db_blocker.unblock():
        database_url = test_database_url()
    port = launch.free_port()
    env = {
        "DATABASE_URL": database_url,
        "OCR_SERVER_URLS": ",".join(ocr_servers),
        "OCR_V2_SERVERS": "2",
    }
    with launch.ServerGroup(tmp_path_factory.mktemp("api"), env=env) as group:
        cmd = launch.api_command(port=port)
        group.start("api", cmd, ready_url=f"http://127.0.0.1:{port}/api/jobs")
        yield f"http://127.0.0.1:{port}"
