from django.contrib import admin
from django.urls import path

from apps.ops import views

# The dashboard sits under /admin/ (staff only, the admin's login): include these URLs
# before admin.site.urls, whose catch-all would answer 404 first.
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/ops/", admin.site.admin_view(views.dashboard), name="ops-dashboard"),
    path(
        "admin/ops/dashboard.json",
        admin.site.admin_view(views.dashboard_json),
        name="ops-dashboard-json",
    ),
]
