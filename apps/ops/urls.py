from django.contrib import admin
from django.contrib.auth.decorators import permission_required
from django.urls import path

from apps.ops import views

# The dashboard sits under /admin/ (the admin's login): include these URLs before
# admin.site.urls, whose catch-all would answer 404 first. It lists any user's failed jobs,
# so it needs the permission that shows every job, not staff alone (README "Access control").
DASHBOARD_PERMISSION = "jobs.view_ocrjob"


def _dashboard_view(view):
    return admin.site.admin_view(
        permission_required(DASHBOARD_PERMISSION, raise_exception=True)(view)
    )


urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/ops/", _dashboard_view(views.dashboard), name="ops-dashboard"),
    path(
        "admin/ops/dashboard.json", _dashboard_view(views.dashboard_json), name="ops-dashboard-json"
    ),
]
