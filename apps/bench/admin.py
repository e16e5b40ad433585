"""Bench runs in the admin, read-only: they are made by `manage.py runbench`."""

from django.contrib import admin

from apps.bench.models import BenchRun


@admin.register(BenchRun)
class BenchRunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "status",
        "duration",
        "cells_run",
        "targets_met",
        "short_commit",
        "git_dirty",
        "bare_ocr_s",
        "report_path",
    ]
    list_filter = ["status", "git_dirty"]
    search_fields = ["git_commit", "report_path", "note"]
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in BenchRun._meta.fields]

    @admin.display(description="cells")
    def cells_run(self, run: BenchRun) -> int:
        return run.cell_count

    @admin.display(description="targets met")
    def targets_met(self, run: BenchRun) -> str:
        return run.targets_met

    @admin.display(description="commit")
    def short_commit(self, run: BenchRun) -> str:
        return run.git_commit[:10] or "-"

    @admin.display(description="duration")
    def duration(self, run: BenchRun) -> str:
        if run.finished_at is None:
            return "-"
        seconds = int((run.finished_at - run.started_at).total_seconds())
        return f"{seconds // 60} min {seconds % 60} s"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
