"""Jobs in the admin: every version renders; actions need the change permission."""

import pytest
from django.contrib.auth.models import Permission

from apps.jobs import services
from apps.jobs.models import JobStatus

pytestmark = pytest.mark.django_db


def test_admin_list_and_detail_render_jobs_of_every_version(admin_client):
    jobs = [
        services.job_create(version=v, backend=b, document="sample.pdf", publish=False)
        for v, b in [("v3", "db"), ("v4", "redis"), ("api", "celery-redis")]
    ]
    jobs.append(services.job_start_sync(version="v0", document="sample.pdf"))
    listing = admin_client.get("/admin/jobs/ocrjob/")
    assert listing.status_code == 200
    for job in jobs:
        assert str(job.id) in listing.content.decode()
    filtered = admin_client.get("/admin/jobs/ocrjob/", {"version": "v0"})
    assert filtered.status_code == 200 and str(jobs[-1].id) in filtered.content.decode()
    detail = admin_client.get(f"/admin/jobs/ocrjob/{jobs[0].id}/change/")
    assert detail.status_code == 200
    assert "pickup" in detail.content.decode()


def staff_client(django_user_model, client, *codenames: str):
    user = django_user_model.objects.create_user("staffer", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def post_action(client, action: str, job) -> None:
    client.post(
        "/admin/jobs/ocrjob/", {"action": action, "_selected_action": [str(job.id)]}, follow=True
    )


def test_view_only_staff_sees_jobs_but_gets_no_actions(django_user_model, client):
    job = services.job_create(version="v3", backend="db", document="sample.pdf", publish=False)
    viewer = staff_client(django_user_model, client, "view_ocrjob")
    listing = viewer.get("/admin/jobs/ocrjob/")
    assert listing.status_code == 200 and str(job.id) in listing.content.decode()
    for action in ("cancel_jobs", "retry_jobs", "requeue_jobs"):
        assert action not in listing.content.decode()
    post_action(viewer, "cancel_jobs", job)
    job.refresh_from_db()
    assert job.status != JobStatus.CANCELLED


def test_the_change_permission_allows_the_actions(django_user_model, client):
    job = services.job_create(version="v3", backend="db", document="sample.pdf", publish=False)
    operator = staff_client(django_user_model, client, "view_ocrjob", "change_ocrjob")
    assert "cancel_jobs" in operator.get("/admin/jobs/ocrjob/").content.decode()
    post_action(operator, "cancel_jobs", job)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_staff_without_permissions_sees_no_jobs(django_user_model, client):
    staff = staff_client(django_user_model, client)
    assert staff.get("/admin/jobs/ocrjob/").status_code == 403
