"""Output shape of a job, shared by the sync (V0-V2) and queue (V3-V6) endpoints."""

from django.urls import reverse
from rest_framework import serializers

from apps.jobs.models import OcrJob


class JobOutputSerializer(serializers.ModelSerializer):
    text = serializers.SerializerMethodField()
    pdf_url = serializers.SerializerMethodField()
    status_url = serializers.SerializerMethodField()
    timings = serializers.SerializerMethodField()

    class Meta:
        model = OcrJob
        fields = [
            "id",
            "version",
            "backend",
            "status",
            "workload",
            "document",
            "attempts",
            "max_attempts",
            "worker",
            "error",
            "result_pages",
            "text",
            "pdf_url",
            "status_url",
            "timings",
            "created_at",
            "queued_at",
            "started_at",
            "finished_at",
            "run_tag",
        ]

    def get_text(self, job: OcrJob) -> str | None:
        """The OCR text of a DONE job; null in lists unless asked for (`?fields=text`)."""
        if job.status != "DONE" or self.context.get("omit_text"):
            return None
        return job.result_text

    def get_pdf_url(self, job: OcrJob) -> str | None:
        if not job.result_pdf:
            return None
        return self._absolute(reverse("job-pdf", kwargs={"job_id": job.id}))

    def get_status_url(self, job: OcrJob) -> str:
        return self._absolute(reverse("job-detail", kwargs={"job_id": job.id}))

    def get_timings(self, job: OcrJob) -> dict:
        return {
            "pickup_s": job.pickup_s,
            "service_s": job.service_s,
            "total_s": job.total_s,
            "engine": job.timings or {},
        }

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path
