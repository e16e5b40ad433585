"""Temporary and result files never outlive the run that made them: a job killed on its
time limit leaves nothing in its temp root, and a discarded run's PDF is deleted."""

import os
import threading
from pathlib import Path

import pytest

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob
from apps.jobs.retry import ErrorCode
from tasks import process, scratch
from tasks.child import WorkReply

pytestmark = pytest.mark.django_db


def test_an_ocr_job_killed_on_timeout_leaves_no_files_in_its_temp_root(settings, tmp_path):
    """Real OCR, stopped by the hard time limit while OCRmyPDF works in its TMPDIR."""
    settings.JOB_TMP_ROOT = str(tmp_path / "jobs")
    settings.JOB_TIME_LIMIT_S = 1.5
    job = services.job_create(
        version="api", backend="memory", document="multipage.pdf", publish=False
    )
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:  # what the workload writes while it runs
        while not done.wait(0.02):
            seen.update(p.name for p in Path(settings.JOB_TMP_ROOT).rglob("*"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outcome = process.process_job(job.id)
    finally:
        done.set()
        watcher.join()
    job = OcrJob.objects.get(id=job.id)
    assert outcome == "retry" and job.error_code == ErrorCode.TIMEOUT
    assert any(name.startswith(("ocr-", "ocrmypdf.io.")) for name in seen), seen  # TMPDIR used
    assert [p for p in Path(settings.JOB_TMP_ROOT).rglob("*") if p.is_file()] == []
    assert list(scratch.worker_root().iterdir()) == []  # the job's directory went too


def test_a_discarded_result_pdf_is_deleted(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.JOB_TMP_ROOT = str(tmp_path / "jobs")
    pdf = Path(settings.MEDIA_ROOT) / "results" / "orphan.pdf"
    pdf.parent.mkdir(parents=True)
    job = services.job_create(version="api", backend="memory", document="d", publish=False)
    claimed = services.job_claim(job_id=job.id, worker="old")

    def finished_after_cancel(request, **kw) -> WorkReply:
        pdf.write_bytes(b"%PDF-1.7")
        services.job_cancel(job_id=job.id)  # cancelled while the child worked
        return WorkReply(ok=True, result=services.JobResult(pdf="results/orphan.pdf"))

    monkeypatch.setattr(process, "run_limited", finished_after_cancel)
    assert process.process_job(job.id, claimed=claimed) == "stale"
    assert not pdf.exists()
    assert OcrJob.objects.get(id=job.id).status == JobStatus.CANCELLED


def test_sweep_removes_the_directories_of_dead_workers_only(settings, tmp_path):
    settings.JOB_TMP_ROOT = str(tmp_path)
    dead = tmp_path / "999999999"  # above pid_max: never alive
    (dead / "job-1").mkdir(parents=True)
    (dead / "job-1" / "ocr-leftover").write_text("x")
    mine = tmp_path / str(os.getpid())
    mine.mkdir()
    assert scratch.sweep_dead() == 1
    assert not dead.exists() and mine.exists()
