"""Jobs in the admin: filter by version, backend and status; a readable detail page.

Cancel, retry and requeue need the change permission (`jobs.change_ocrjob`): a view-only
staff user sees jobs but cannot act on them.
"""

from collections.abc import Callable

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from apps.jobs import services
from apps.jobs.models import OcrJob


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _apply(admin_obj, request, queryset, action: Callable[..., bool], verb: str) -> None:
    """Run a guarded service action on each selected job; report what changed."""
    ids = list(queryset.values_list("id", flat=True))
    done = sum(1 for job_id in ids if action(job_id=job_id))
    skipped = len(ids) - done
    admin_obj.message_user(request, f"{verb} {done} job(s).", messages.SUCCESS)
    if skipped:
        admin_obj.message_user(
            request,
            f"{skipped} job(s) skipped: not in a state that allows it (or the broker refused).",
            messages.WARNING,
        )


@admin.register(OcrJob)
class OcrJobAdmin(admin.ModelAdmin):
    actions = ["cancel_jobs", "retry_jobs", "requeue_jobs"]
    list_display = [
        "id",
        "version",
        "backend",
        "status",
        "workload",
        "document",
        "attempts",
        "worker",
        "pickup",
        "service",
        "total",
        "created_at",
    ]
    list_filter = ["version", "backend", "status", "workload"]
    search_fields = ["id", "document", "worker", "error", "run_tag"]
    date_hierarchy = "created_at"
    list_per_page = 50
    readonly_fields = [f.name for f in OcrJob._meta.fields] + [
        "pickup",
        "service",
        "total",
        "pdf_link",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "version",
                    "backend",
                    "status",
                    "workload",
                    "document",
                    "language",
                    "run_tag",
                ]
            },
        ),
        (
            "Execution",
            {"fields": ["attempts", "max_attempts", "worker", "lease_expires_at", "error"]},
        ),
        (
            "Timings",
            {
                "fields": [
                    "created_at",
                    "queued_at",
                    "started_at",
                    "finished_at",
                    "pickup",
                    "service",
                    "total",
                    "timings",
                ]
            },
        ),
        ("Result", {"fields": ["result_pages", "pdf_link", "result_text", "upload"]}),
    ]

    @admin.display(description="pickup")
    def pickup(self, job: OcrJob) -> str:
        return _seconds(job.pickup_s)

    @admin.display(description="service")
    def service(self, job: OcrJob) -> str:
        return _seconds(job.service_s)

    @admin.display(description="end to end")
    def total(self, job: OcrJob) -> str:
        return _seconds(job.total_s)

    @admin.display(description="searchable PDF")
    def pdf_link(self, job: OcrJob) -> str:
        if not job.result_pdf:
            return "-"
        return format_html(
            '<a href="{}">download</a>', reverse("job-pdf", kwargs={"job_id": job.id})
        )

    @admin.action(permissions=["change"], description="Cancel (pending, queued or running jobs)")
    def cancel_jobs(self, request, queryset) -> None:
        _apply(self, request, queryset, services.job_cancel, "Cancelled")

    @admin.action(
        permissions=["change"],
        description="Retry (failed or cancelled jobs, attempts reset)",
    )
    def retry_jobs(self, request, queryset) -> None:
        _apply(self, request, queryset, services.job_retry, "Retried")

    @admin.action(
        permissions=["change"],
        description="Requeue (send a stuck pending or queued job again)",
    )
    def requeue_jobs(self, request, queryset) -> None:
        _apply(self, request, queryset, services.job_requeue, "Requeued")

    def has_add_permission(self, request) -> bool:
        return False  # jobs are made through the API, so they get published
