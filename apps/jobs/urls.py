"""The routes of every version, from apps/jobs/versions.py: POST /vN/ocr/sync (V0-V2),
/vN/ocr/jobs[/<id>] (V3-V6, one converter matching exactly those), /api/jobs[/<id>[/pdf]]."""

import re

from django.urls import path, register_converter

from apps.jobs import sync_views, versions, views, wait_views


class QueueVersion:
    regex = "(?:{})".format("|".join(re.escape(name) for name in versions.queue_versions()))

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(QueueVersion, "qv")
QUEUE_JOBS = versions.route(versions.QUEUE, "<qv:version>")
API_JOBS = versions.get(versions.API_VERSION).route

urlpatterns = [
    *(
        path(versions.get(name).route, sync_views.VIEWS[name], name=f"{name}-sync")
        for name in versions.sync_versions()
    ),
    path(QUEUE_JOBS, views.VersionJobsView.as_view(), name="version-jobs"),
    path(f"{QUEUE_JOBS}/<uuid:job_id>", wait_views.job_detail, name="version-job-detail"),
    path(API_JOBS, views.ApiJobsView.as_view(), name="jobs"),
    path(f"{API_JOBS}/<uuid:job_id>", wait_views.job_detail, name="job-detail"),
    path(f"{API_JOBS}/<uuid:job_id>/pdf", views.JobPdfView.as_view(), name="job-pdf"),
]
