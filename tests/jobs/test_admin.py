import pytest

from apps.jobs import services

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
