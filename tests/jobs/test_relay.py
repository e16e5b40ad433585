"""`runrelay`: the outbox relay as its own process (for the frameworks' stock CLIs)."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from apps.ops import launch
from tests.conftest import wait_for


@pytest.mark.django_db(transaction=True)
def test_runrelay_publishes_a_job_left_pending(subprocess_env, tmp_path):
    job = services.job_create(
        version="v3", backend="db", document="sample.pdf", workload="noop", publish=False
    )
    OcrJob.objects.filter(id=job.id).update(created_at=timezone.now() - timedelta(minutes=1))
    log = tmp_path / "relay.log"
    cmd = launch.manage_command("runrelay", "--backend", "db")
    proc = launch.start(cmd, log=log, env=subprocess_env)
    try:
        wait_for(
            lambda: OcrJob.objects.get(id=job.id).status == JobStatus.QUEUED,
            timeout=60,
            message=lambda: log.read_text(),
        )
    finally:
        assert launch.stop_group(proc, timeout_s=30, leader_only=True)
    assert proc.returncode == 0
    assert "runrelay: stopped" in log.read_text()


def test_runrelay_refuses_an_unknown_backend():
    with pytest.raises(CommandError, match="unknown backend"):
        call_command("runrelay", "--backend", "nope")
