"""A job's detail URL as an async view, so `?wait=S` waits without a connection or thread.

DRF's JobDetailView answers every read (authentication, permissions, filtering and the
JSON stay DRF's); this view only adds the wait around it: read, and when the job is not
finished yet, wait for its NOTIFY (apps/jobs/waiting.py) and read once more.
"""

from functools import partial

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from apps.jobs import waiting
from apps.jobs.models import FINISHED
from apps.jobs.views import JobDetailView

_drf_detail = JobDetailView.as_view()


@csrf_exempt  # like every DRF view: DRF's session authentication enforces CSRF itself
async def job_detail(request, **url_kwargs):
    """GET /api/jobs/{id} and /vN/ocr/jobs/{id}, with an optional `?wait=S` (0 < S <= 60).
    Other methods go straight to DRF (405 before any parameter is looked at)."""
    if request.method != "GET":
        return await _read(request, url_kwargs)
    try:
        wait_s = waiting.parse_wait_s(request.GET.get("wait"))
    except ValueError as exc:
        return JsonResponse({"wait": [str(exc)]}, status=400)
    read = partial(_read, request, url_kwargs)
    response = await read()
    if wait_s is None or not _unfinished(response):
        return response
    # Under WSGI (or the test client) each request gets a throw-away event loop: no
    # listener there, the wait re-reads every waiting.FALLBACK_REREAD_S instead.
    listener = waiting.get_listener() if isinstance(request, ASGIRequest) else None
    return await waiting.wait_until(
        job_id=str(url_kwargs["job_id"]),
        wait_s=wait_s,
        read=read,
        finished=lambda answer: not _unfinished(answer),
        listener=listener,
    )


# drf-spectacular and DRF's schema generator document the DRF view behind this one.
# (mypy does not model attributes set on a function object.)
job_detail.cls = JobDetailView  # type: ignore[attr-defined]
job_detail.initkwargs = {}  # type: ignore[attr-defined]


@sync_to_async
def _read(request, url_kwargs: dict):
    """Run the DRF view and render its answer, then give the pooled connection back."""
    try:
        response = _drf_detail(request, **url_kwargs)
        response.render()
        return response
    finally:
        if not connection.in_atomic_block:  # (tests run views inside one transaction)
            connection.close()


def _unfinished(response) -> bool:
    """A 200 whose job may still change (anything else is the final answer)."""
    data = getattr(response, "data", None)
    return (
        response.status_code == 200
        and isinstance(data, dict)
        and (data.get("status") not in FINISHED)
    )
