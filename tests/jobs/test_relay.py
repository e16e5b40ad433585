"""`runrelay`: the outbox relay as its own process (for the frameworks' stock CLIs)."""

import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from tests.conftest import ROOT, wait_for


@pytest.mark.django_db(transaction=True)
def test_runrelay_publishes_a_job_left_pending(subprocess_env, tmp_path):
    job = services.job_create(
        version="v3", backend="db", document="sample.pdf", workload="noop", publish=False
    )
    OcrJob.objects.filter(id=job.id).update(created_at=timezone.now() - timedelta(minutes=1))
    log = tmp_path / "relay.log"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runrelay", "--backend", "db"],
        cwd=ROOT,
        env=subprocess_env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: OcrJob.objects.get(id=job.id).status == JobStatus.QUEUED,
            timeout=60,
            message=lambda: log.read_text(),
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert "runrelay: stopped" in log.read_text()


def test_runrelay_refuses_an_unknown_backend():
    with pytest.raises(CommandError, match="unknown backend"):
        call_command("runrelay", "--backend", "nope")
