"""Reads of jobs (views and the bench read here; writes live in services)."""

from uuid import UUID

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from apps.jobs.models import OcrJob

LIST_LIMIT = 50


def job_get(*, job_id: UUID, version: str | None = None) -> OcrJob:
    filters = {"id": job_id, **({"version": version} if version else {})}
    return get_object_or_404(OcrJob, **filters)


def job_list(*, filters: dict | None = None, limit: int = LIST_LIMIT) -> QuerySet[OcrJob]:
    allowed = {"version", "backend", "status", "workload", "run_tag"}
    clean = {k: v for k, v in (filters or {}).items() if k in allowed and v}
    return OcrJob.objects.filter(**clean).order_by("-created_at")[:limit]
