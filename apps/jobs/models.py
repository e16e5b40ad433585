"""`OcrJob`: the record of every job of every version, and the queue of the `db` backend."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.jobs import versions


class JobStatus(models.TextChoices):
    PENDING = "PENDING"  # row committed, not yet handed to the broker (the outbox)
    QUEUED = "QUEUED"  # handed to the broker (or, for `db`, ready to claim)
    RUNNING = "RUNNING"  # claimed by a worker holding a lease
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # stopped by an operator; workers honour it before and during a job


IDEMPOTENCY_KEY_MAX = 128
FINISHED = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)
READY = (JobStatus.PENDING, JobStatus.QUEUED)


class OcrJob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    version = models.CharField(max_length=8, choices=versions.choices())  # apps/jobs/versions.py
    backend = models.CharField(max_length=32, help_text="Backend alias, or 'http' for V0-V2.")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="ocr_jobs",
        help_text="Who submitted the job; only they (and staff) can see it.",
    )
    workload = models.CharField(max_length=32, default="ocr")
    document = models.CharField(max_length=255, help_text="Corpus name or uploaded file name.")
    upload = models.FileField(upload_to="uploads/", blank=True)
    language = models.CharField(max_length=32, default="eng")
    idempotency_key = models.CharField(
        max_length=IDEMPOTENCY_KEY_MAX,
        null=True,
        blank=True,
        help_text="The submitter's Idempotency-Key header: one job per key and owner.",
    )
    run_tag = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="Label of the bench cell that made this job.",
    )

    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    claim_token = models.UUIDField(
        null=True,
        blank=True,
        editable=False,
        help_text="Set anew at each claim; heartbeats and results must name it.",
    )
    worker = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(
        max_length=32, blank=True, help_text="Machine-readable reason of the last failure."
    )
    run_after = models.DateTimeField(
        null=True, blank=True, help_text="Not to be claimed before this time (retry backoff)."
    )

    result_text = models.TextField(blank=True)
    result_pages = models.PositiveIntegerField(null=True, blank=True)
    result_pdf = models.CharField(max_length=255, blank=True, help_text="Path under MEDIA_ROOT.")
    timings = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(
        null=True, blank=True, help_text="Last hand-over to the broker."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("run_bench_workloads", "Can submit bench workloads (noop, fail, sleep:S, cpu:S)"),
            ("unlimited", "Is exempt from the request rate and the per-user job quotas"),
        ]
        indexes = [
            models.Index(
                fields=["backend", "created_at"],
                name="ocrjob_ready_idx",
                condition=Q(status__in=READY),
            ),
            models.Index(fields=["owner", "created_at"], name="ocrjob_owner_idx"),
            models.Index(
                fields=["backend", "lease_expires_at"],
                name="ocrjob_running_idx",
                condition=Q(status=JobStatus.RUNNING),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="ocrjob_owner_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="ocrjob_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=JobStatus.RUNNING)
                | Q(started_at__isnull=False, lease_expires_at__isnull=False),
                name="ocrjob_running_has_lease",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=FINISHED) | Q(finished_at__isnull=False),
                name="ocrjob_finished_has_time",
            ),
            models.CheckConstraint(
                condition=Q(attempts__lte=models.F("max_attempts")),
                name="ocrjob_attempts_bounded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version}/{self.backend} {self.document} {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    def seconds_between(self, start: str, end: str) -> float | None:
        a, b = getattr(self, start), getattr(self, end)
        return None if a is None or b is None else (b - a).total_seconds()

    @property
    def pickup_s(self) -> float | None:
        return self.seconds_between("queued_at", "started_at")

    @property
    def service_s(self) -> float | None:
        return self.seconds_between("started_at", "finished_at")

    @property
    def total_s(self) -> float | None:
        return self.seconds_between("created_at", "finished_at")


class WorkerHeartbeat(models.Model):
    """One row per live worker process (consume loop, Celery or Dramatiq child), refreshed
    every WORKER_HEARTBEAT_S: which backends have a consumer, and which workers are idle."""

    worker = models.CharField(max_length=128, primary_key=True)  # host:pid
    backend = models.CharField(max_length=32, db_index=True)
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.worker} ({self.backend})"
