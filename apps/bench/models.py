"""`BenchRun`: one `runbench` run, its context and its per-cell results."""

from django.db import models
from django.utils import timezone


class BenchStatus(models.TextChoices):
    RUNNING = "running"
    DONE = "done"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class BenchRun(models.Model):
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=12, choices=BenchStatus.choices, default=BenchStatus.RUNNING
    )
    git_commit = models.CharField(max_length=40, blank=True)
    git_dirty = models.BooleanField(default=False)
    machine = models.JSONField(default=dict, blank=True, help_text="nproc, CPU model, RAM")
    versions = models.JSONField(default=dict, blank=True, help_text="Python and libraries")
    params = models.JSONField(default=dict, blank=True, help_text="matrix and options")
    cells = models.JSONField(default=list, blank=True, help_text="per-cell summaries")
    targets = models.JSONField(default=list, blank=True, help_text="targets table rows")
    bare_ocr_s = models.FloatField(
        null=True, blank=True, help_text="median in-process run_ocr seconds"
    )
    report_path = models.CharField(max_length=500, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"bench {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def cell_count(self) -> int:
        return len(self.cells or [])

    @property
    def targets_met(self) -> str:
        """'met / judged' over the target rows that have a bar."""
        judged = [row for row in self.targets or [] if row.get("met") is not None]
        return f"{sum(1 for row in judged if row['met'])}/{len(judged)}"
