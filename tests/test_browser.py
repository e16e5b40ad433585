"""The pages people open, in a real headless Chromium (Debian's) driven by Playwright,
against the real API server: styled (static files served by the app), with their content,
and offline (every request stays on this machine). Screenshots: results/screenshots/."""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import sync_playwright

from apps.jobs import services
from apps.jobs.models import JobStatus, OcrJob

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "results" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TRANSPARENT = "rgba(0, 0, 0, 0)"
PASSWORD = "browser-test-pw-3141"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def jobs(django_user_model) -> dict[str, OcrJob]:
    """A superuser and three jobs, committed before the browser's event loop starts
    (Django's ORM refuses to run inside it)."""
    django_user_model.objects.create_superuser("browser-admin", "a@example.com", PASSWORD)
    now = timezone.now()
    done = services.job_create(version="v3", backend="db", document="sample.pdf", publish=False)
    OcrJob.objects.filter(id=done.id).update(
        status=JobStatus.DONE,
        created_at=now - timedelta(seconds=4),
        queued_at=now - timedelta(seconds=3),
        started_at=now - timedelta(seconds=2),
        finished_at=now - timedelta(seconds=1),
        result_text="The quick brown fox recognized by Tesseract",
        result_pages=1,
    )
    running = services.job_create(version="v4", backend="redis", document="multipage.pdf")
    OcrJob.objects.filter(id=running.id).update(
        status=JobStatus.RUNNING,
        attempts=1,
        worker="browser-host:4242",
        started_at=now,
        lease_expires_at=now + timedelta(minutes=10),
    )
    failed = services.job_create(version="v5", backend="rabbit", document="degraded.pdf")
    OcrJob.objects.filter(id=failed.id).update(
        status=JobStatus.FAILED, finished_at=now, error="WorkloadError: page has no text"
    )
    return {"done": done, "running": running, "failed": failed}


@pytest.fixture
def page(api_server, jobs):
    """A Chromium page whose requests may only reach this machine (others are aborted)."""
    outside: list[str] = []

    def guard(route):
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=api_server, viewport={"width": 1280, "height": 900})
        context.route("**/*", guard)
        tab = context.new_page()
        failed_static: list[str] = []
        tab.on(
            "response",
            lambda r: (
                failed_static.append(f"{r.status} {r.url}")
                if "/static/" in r.url and r.status >= 400
                else None
            ),
        )
        yield tab
        browser.close()
    assert not outside, f"the pages asked for outside resources: {outside}"
    assert not failed_static, f"static files missing: {failed_static}"


def computed(page, selector: str, prop: str) -> str:
    return page.eval_on_selector(selector, f"el => getComputedStyle(el).{prop}")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def assert_admin_styled(page) -> None:
    assert computed(page, "#header", "backgroundColor") != TRANSPARENT
    assert computed(page, "body", "marginTop") == "0px"  # admin's base.css resets it


def test_admin_dashboard_and_docs_render_styled_offline(jobs, page):
    page.goto("/admin/login/")
    assert_admin_styled(page)
    page.fill("#id_username", "browser-admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#ops-link")
    assert_admin_styled(page)
    assert "Ocr jobs" in page.inner_text("#content-main")
    assert computed(page, "#content-main caption", "textTransform") == "uppercase"
    shot(page, "admin-index")

    page.goto("/admin/jobs/ocrjob/")
    table = page.inner_text("#result_list")
    assert all(str(job.id) in table for job in jobs.values())
    assert computed(page, "#changelist-filter", "display") != "none"
    assert_admin_styled(page)
    shot(page, "admin-job-list")

    page.goto(f"/admin/jobs/ocrjob/{jobs['done'].id}/change/")
    content = page.inner_text("#content-main")
    assert "The quick brown fox" in content and "sample.pdf" in content
    assert "3.000 s" in content  # end to end
    assert_admin_styled(page)
    shot(page, "admin-job-detail")

    page.goto("/admin/ops/")
    dashboard = page.inner_text("#content-main")
    assert "browser-host:4242" in dashboard and "page has no text" in dashboard
    assert "QUEUE DEPTH" in dashboard  # captions uppercased by the admin CSS
    assert computed(page, "#live-workers caption", "backgroundColor") != TRANSPARENT
    shot(page, "ops-dashboard")

    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    operations = page.locator(".swagger-ui .opblock").count()
    assert operations >= 5, f"only {operations} operations listed"
    assert "/api/jobs" in page.inner_text(".swagger-ui")
    assert computed(page, ".swagger-ui .opblock", "borderTopStyle") == "solid"
    shot(page, "api-docs")
