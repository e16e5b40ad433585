from django.urls import path, register_converter

from apps.jobs import sync_views, views, wait_views


class QueueVersion:
    regex = "v[3-6]"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(QueueVersion, "qv")

urlpatterns = [
    path("v0/ocr/sync", sync_views.V0SyncView.as_view(), name="v0-sync"),
    path("v1/ocr/sync", sync_views.v1_sync, name="v1-sync"),
    path("v2/ocr/sync", sync_views.v2_sync, name="v2-sync"),
    path("<qv:version>/ocr/jobs", views.VersionJobsView.as_view(), name="version-jobs"),
    path(
        "<qv:version>/ocr/jobs/<uuid:job_id>",
        wait_views.job_detail,
        name="version-job-detail",
    ),
    path("api/jobs", views.ApiJobsView.as_view(), name="jobs"),
    path("api/jobs/<uuid:job_id>", wait_views.job_detail, name="job-detail"),
    path("api/jobs/<uuid:job_id>/pdf", views.JobPdfView.as_view(), name="job-pdf"),
]
