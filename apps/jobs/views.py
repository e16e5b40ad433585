"""Queue versions V3-V6 and the all-backends API: submit (202), status, list, PDF."""

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.jobs import quotas, schema, selectors, services, versions
from apps.jobs.backends import backend_aliases
from apps.jobs.idempotency import PARAMETER as IDEMPOTENCY_KEY
from apps.jobs.idempotency import idempotency_key
from apps.jobs.pagination import JobPagination
from apps.jobs.permissions import check_workload_allowed
from apps.jobs.serializers import JobOutputSerializer
from apps.jobs.workloads import parse_workload
from apps.ocr.inputs import DocumentSerializer


class JobInputSerializer(DocumentSerializer):
    workload = serializers.CharField(required=False, default="ocr", max_length=32)
    tag = serializers.CharField(required=False, default="", max_length=64, allow_blank=True)
    queue_without_worker = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Queue the job even when no worker consumes its backend now (else 409).",
    )

    def validate_workload(self, value: str) -> str:
        try:
            parse_workload(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value


class ApiJobInputSerializer(JobInputSerializer):
    backend = serializers.ChoiceField(choices=[])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        backend = self.fields["backend"]
        assert isinstance(backend, serializers.ChoiceField)
        backend.choices = backend_aliases()


def _submit(request, serializer_class, *, version: str, backend: str | None = None):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    data, document = serializer.validated_data, serializer.document()
    check_workload_allowed(user=request.user, workload=data["workload"])
    backend = backend or data["backend"]
    quotas.submit_check(
        user=request.user, backend=backend, queue_anyway=data["queue_without_worker"]
    )
    job, created = services.job_submit(
        owner=request.user,
        idempotency_key=idempotency_key(request),
        admit=quotas.in_flight_admission(request.user),
        version=version,
        backend=backend,
        document=document.name,
        upload=document.upload,
        workload=data["workload"],
        language=document.language,
        run_tag=data["tag"],
    )
    body = JobOutputSerializer(job, context={"request": request}).data
    code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    return Response(body, status=code, headers={"Location": body["status_url"]})


def _page(request, view, filters: dict):
    """One page of the caller's jobs: {count, next, previous, results}. Without
    `?fields=text` each job's text is null (and not read): a page stays small."""
    if any("\x00" in value for value in filters.values()):  # PostgreSQL refuses NUL in text
        raise serializers.ValidationError({"detail": "query parameters must not contain NUL"})
    with_text = "text" in request.query_params.get("fields", "").split(",")
    jobs = selectors.job_list(user=request.user, filters=filters)
    if not with_text:
        jobs = jobs.defer("result_text")
    paginator = JobPagination()
    page = paginator.paginate_queryset(jobs, request, view=view)
    context = {"request": request, "omit_text": not with_text}
    data = JobOutputSerializer(page, many=True, context=context).data
    return paginator.get_paginated_response(data)


SUBMITTED = {202: JobOutputSerializer, 200: JobOutputSerializer, **schema.SUBMIT_ERRORS}
PAGE = {200: schema.JobPageSerializer, 400: schema.BAD_REQUEST, **schema.READ_ERRORS}


class VersionJobsView(APIView):
    """POST: submit a job to this version's backend (202). GET: recent jobs."""

    @extend_schema(
        request=schema.submit_bodies(JobInputSerializer),
        responses=SUBMITTED,
        parameters=[schema.VERSION_PARAMETER, IDEMPOTENCY_KEY],
    )
    def post(self, request, version: str):
        backend = versions.backend_for(version)  # the URL converter admits queue versions only
        return _submit(request, JobInputSerializer, version=version, backend=backend)

    @extend_schema(
        responses=PAGE,
        parameters=schema.list_parameters(path_version=True),
        operation_id="ocr_jobs_list",
    )
    def get(self, request, version: str):
        return _page(request, self, {**request.query_params.dict(), "version": version})


class ApiJobsView(APIView):
    """POST: submit a job to any backend by alias (202). GET: recent jobs of every backend."""

    @extend_schema(
        request=schema.submit_bodies(ApiJobInputSerializer),
        responses=SUBMITTED,
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request):
        return _submit(request, ApiJobInputSerializer, version=versions.API_VERSION)

    @extend_schema(
        responses=PAGE, parameters=schema.list_parameters(), operation_id="api_jobs_list"
    )
    def get(self, request):
        return _page(request, self, request.query_params.dict())


WAIT_PARAMETER = OpenApiParameter(
    "wait",
    float,
    description="Long-poll: answer as soon as the job is DONE, FAILED or CANCELLED, or "
    "after this many seconds (0 < wait <= 60) with its current state; 400 otherwise.",
)


class JobDetailView(APIView):
    """A job's state. `?wait=S` is served around this view by wait_views.job_detail."""

    @extend_schema(
        responses={200: JobOutputSerializer, 400: schema.BAD_REQUEST, **schema.READ_ERRORS},
        parameters=[WAIT_PARAMETER],
    )
    def get(self, request, job_id, version: str | None = None):
        job = selectors.job_get(job_id=job_id, version=version, user=request.user)
        return Response(JobOutputSerializer(job, context={"request": request}).data)


class JobPdfView(APIView):
    """The searchable PDF of a DONE job."""

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY, **schema.READ_ERRORS})
    def get(self, request, job_id):
        job = selectors.job_get(job_id=job_id, user=request.user)
        path = selectors.job_pdf_path(job=job)
        if path is None:
            raise Http404("this job has no searchable PDF (yet)")
        return FileResponse(
            path.open("rb"), content_type="application/pdf", filename=f"{job.id}.pdf"
        )
