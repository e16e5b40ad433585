"""V0-V2: no queue. The API calls an OCR server over HTTP and waits for the answer.

- V0 blocks a server thread for the whole call (a sync view).
- V1 makes the same call from an async view: the event loop serves others while it waits.
- V2 is V1 spread over N OCR servers, least outstanding requests first.
Each call is recorded as an OcrJob (born RUNNING, ends DONE or FAILED on every path: a
client that disconnects or an error mid-call fails it here; if the API process dies, the
relay fails it once its lease runs out), so every version can be inspected in the admin.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.jobs import schema, services
from apps.jobs.results import JobResult
from apps.jobs.retry import ErrorCode
from apps.ocr.client import CallOutcome, predict_async, predict_sync, v2_balancer
from apps.ocr.inputs import DocumentInput, DocumentSerializer, parse_document
from apps.ocr.parsers import JsonBodyError, check_length, declared_length, load_json

log = logging.getLogger(__name__)


def start_call(version: str, document: DocumentInput, tag: str = "", owner=None):
    """Record the call, then give this thread's database connection back to the pool:
    the OCR call that follows takes seconds, and 16 calls each holding a connection
    through it exhaust the pool (503 db_busy). `finish_call` takes one again."""
    job = services.job_start_sync(
        version=version,
        document=document.name,
        language=document.language,
        run_tag=tag,
        owner=owner,
    )
    if not connection.in_atomic_block:  # (tests run views inside one transaction)
        connection.close()
    return job


class _AccessGate(APIView):
    """DRF's authentication, permission and throttle checks for the async views (V1, V2),
    so they answer exactly like every other endpoint (401, 403, 429 with Retry-After)."""

    def post(self, request):  # never called: only `initial` runs
        raise NotImplementedError


def check_access(request) -> tuple[object, HttpResponse | None]:
    """(user, None) when the call may go on, else (None, the rendered DRF error)."""
    gate = _AccessGate()
    drf_request = gate.initialize_request(request)
    gate.request, gate.args, gate.kwargs = drf_request, (), {}
    gate.headers = gate.default_response_headers
    try:
        gate.initial(drf_request)
    except Exception as exc:  # DRF's APIExceptions; anything else re-raises in handler
        response = gate.finalize_response(drf_request, gate.handle_exception(exc))
        return None, response.render()
    return drf_request.user, None


def _tag(data) -> str:
    """The bench's run tag (`tag` in the body), stored on the job like V3-V6 do."""
    return str(data.get("tag") or "")[:64]


def finish_call(job, outcome: CallOutcome) -> tuple[int, dict]:
    """Store the call's end on its job; return the API's status and body."""
    body = outcome.body
    if outcome.status == 200:
        result = JobResult(
            text=body.get("text", ""),
            pages=body.get("pages"),
            pdf=body.get("pdf", ""),
            timings=body.get("timings", {}),
        )
        services.job_succeed(
            job_id=job.id,
            claim=job.claim_token,
            result=result,
            worker=body.get("server", outcome.server),
        )
        pdf_url = reverse("job-pdf", kwargs={"job_id": job.id}) if result.pdf else None
        return 200, {
            "job_id": str(job.id),
            "version": job.version,
            "text": result.text,
            "pages": result.pages,
            "timings": result.timings,
            "pdf_url": pdf_url,
            "server": outcome.server,
        }
    error = f"{outcome.status}: {body.get('detail', body)}"
    abandon_call(job, error=error, code=ErrorCode.HTTP_FAILED)
    return outcome.status, {"job_id": str(job.id), "version": job.version, **body}


def abandon_call(job, *, error: str, code: str) -> None:
    """FAILED with `code`, unless the call already ended (the relay failed it)."""
    try:
        services.job_fail(job_id=job.id, claim=job.claim_token, error=error, code=code, retry=False)
    except services.StaleClaim:
        log.warning("sync job %s had already ended; %s not stored", job.id, code)


class V0SyncView(APIView):
    """V0: the server thread waits for the OCR server."""

    @extend_schema(
        request=DocumentSerializer, responses={200: OpenApiTypes.OBJECT, **schema.SYNC_ERRORS}
    )
    def post(self, request):
        document = parse_document(request.data, request.FILES)
        job = start_call("v0", document, _tag(request.data), owner=request.user)
        try:
            outcome = predict_sync(settings.OCR_SERVER_URLS[0], document.http_payload())
        except BaseException as exc:
            abandon_call(job, error=f"call failed: {exc!r}", code=ErrorCode.HTTP_FAILED)
            raise
        code, body = finish_call(job, outcome)
        return Response(body, status=code)


async def _parse(request) -> tuple[DocumentInput, str] | JsonResponse:
    if request.content_type == "application/json":
        try:
            check_length(declared_length(request.META))
            data = load_json(request.body)
        except JsonBodyError as exc:
            return JsonResponse({"detail": str(exc)}, status=400)
        if not isinstance(data, dict):
            return JsonResponse({"detail": "JSON body must be an object"}, status=400)
        files = None
    else:
        data, files = request.POST, request.FILES
    try:
        return parse_document(data, files), _tag(data)
    except ValidationError as exc:
        return JsonResponse(exc.detail, status=400, safe=False)


async def _async_call(request, version: str, pick_server) -> HttpResponse:
    user, refused = await sync_to_async(check_access)(request)
    if refused is not None:
        return refused
    parsed = await _parse(request)
    if isinstance(parsed, JsonResponse):
        return parsed
    document, tag = parsed
    job = await sync_to_async(start_call)(version, document, tag, user)
    try:
        async with pick_server() as server:
            outcome = await predict_async(server, document.http_payload())
    except asyncio.CancelledError:  # the client disconnected: the call is abandoned
        await _abandon(job, "the client disconnected before the answer", ErrorCode.CLIENT_GONE)
        raise
    except Exception as exc:
        await _abandon(job, f"call failed: {exc!r}", ErrorCode.HTTP_FAILED)
        raise
    code, body = await sync_to_async(finish_call)(job, outcome)
    return JsonResponse(body, status=code)


async def _abandon(job, error: str, code: str) -> None:
    # Shielded: a second cancellation must not stop the job from being stored.
    await asyncio.shield(sync_to_async(abandon_call)(job, error=error, code=code))


class _Fixed:
    def __init__(self, server: str):
        self.server = server

    async def __aenter__(self) -> str:
        return self.server

    async def __aexit__(self, *exc) -> None:
        return None


@csrf_exempt
@require_POST
async def v1_sync(request):
    """V1: the same call as V0, awaited; no server thread is held while OCR runs."""
    return await _async_call(request, "v1", lambda: _Fixed(settings.OCR_SERVER_URLS[0]))


@csrf_exempt
@require_POST
async def v2_sync(request):
    """V2: V1 spread over the first OCR_V2_SERVERS servers, least outstanding first."""
    return await _async_call(request, "v2", v2_balancer().lease)


# The view of each sync version (apps/jobs/urls.py mounts them from apps/jobs/versions.py).
VIEWS: dict[str, Callable[..., Any]] = {"v0": V0SyncView.as_view(), "v1": v1_sync, "v2": v2_sync}
