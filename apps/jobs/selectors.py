"""Reads of jobs (views and the bench read here; writes live in services).

Ownership lives here: a caller sees its own jobs, holders of `jobs.view_ocrjob` see every
job, and another user's job does not exist for the caller (404, not 403, so ids cannot be
probed).
"""

from pathlib import Path
from uuid import UUID

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from apps.jobs.files import media_path
from apps.jobs.models import OcrJob
from apps.jobs.permissions import can_view_all_jobs

LIST_FILTERS = ("version", "backend", "status", "workload", "run_tag")
User = AuthUser | AnonymousUser | None


def jobs_visible_to(*, user: User) -> QuerySet[OcrJob]:
    """Every job for holders of `jobs.view_ocrjob` (and for internal callers passing
    user=None), else the owner's."""
    if user is None or can_view_all_jobs(user):
        return OcrJob.objects.all()
    if not user.is_authenticated:
        return OcrJob.objects.none()
    return OcrJob.objects.filter(owner=user)


def job_get(*, job_id: UUID, user: User, version: str | None = None) -> OcrJob:
    """The job, if `user` may see it; Http404 otherwise."""
    filters = {"id": job_id, **({"version": version} if version else {})}
    return get_object_or_404(jobs_visible_to(user=user), **filters)


def job_list(*, user: User, filters: dict | None = None) -> QuerySet[OcrJob]:
    """Jobs `user` may see, newest first, narrowed by the known filters (unknown ignored)."""
    clean = {k: v for k, v in (filters or {}).items() if k in LIST_FILTERS and v}
    return jobs_visible_to(user=user).filter(**clean).order_by("-created_at")


def job_pdf_path(*, job: OcrJob) -> Path | None:
    """The job's searchable PDF on disk, confined to MEDIA_ROOT; None if there is none."""
    path = media_path(job.result_pdf)
    return path if path is not None and path.is_file() else None
