"""What the OpenAPI schema says of the job endpoints beyond their serializers: every error
answer with its body, the page envelope of the lists, and the submit bodies (a corpus
`pdfName` as JSON, or a `file` as multipart: exactly one of the two)."""

from copy import deepcopy

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from apps.jobs import versions
from apps.jobs.selectors import LIST_FILTERS
from apps.jobs.serializers import JobOutputSerializer


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False, help_text="Machine-readable reason.")


class JobPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = JobOutputSerializer(many=True)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=description)


BAD_REQUEST = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="Invalid input: {field: [messages]} or {detail: message}.",
)
UNAUTHORIZED = _error("No or a wrong `Authorization: Token ...` header.")
FORBIDDEN = _error("Not allowed (a bench workload without the permission, a storage quota).")
NOT_FOUND = _error("No such job for this caller (or no such URL).")
CONFLICT = _error("No live worker consumes the backend (`code`: no_live_worker).")
TOO_LARGE = _error("The request body is above REQUEST_MAX_BYTES.")
UNSUPPORTED = _error("A Content-Type the endpoint does not read.")
THROTTLED = _error("Request rate or jobs-in-flight quota reached; see Retry-After.")
UNAVAILABLE = _error("The database is busy or restarting (`code`: db_busy, db_unavailable).")
NOT_ACCEPTABLE = _error("An Accept header the endpoint cannot answer.")

READ_ERRORS = {401: UNAUTHORIZED, 404: NOT_FOUND, 406: NOT_ACCEPTABLE, 429: THROTTLED,
               503: UNAVAILABLE}  # fmt: skip
SUBMIT_ERRORS = {
    400: BAD_REQUEST,
    403: FORBIDDEN,
    409: CONFLICT,
    413: TOO_LARGE,
    415: UNSUPPORTED,
    **READ_ERRORS,
}
SYNC_ERRORS = {
    **{code: SUBMIT_ERRORS[code] for code in (400, 401, 403, 406, 413, 415, 429, 503)},
    502: _error("The OCR server failed or answered with an error."),
    504: _error("The OCR server did not answer in time."),
}
VERSION_PARAMETER = OpenApiParameter(
    "version", str, OpenApiParameter.PATH, enum=versions.queue_versions()
)


def list_parameters(*, path_version: bool = False) -> list[OpenApiParameter]:
    """`limit`, `offset`, `fields` and the filters (`version` is the path's own there)."""
    filters = [name for name in LIST_FILTERS if not (path_version and name == "version")]
    return [
        OpenApiParameter("limit", int, description="Jobs per page (default API_PAGE_SIZE)."),
        OpenApiParameter("offset", int, description="Jobs to skip."),
        OpenApiParameter("fields", str, description="`text` adds each DONE job's OCR text."),
        *[OpenApiParameter(name, str, description="Filter: exact match.") for name in filters],
        *([VERSION_PARAMETER] if path_version else []),
    ]


def _unbound(field: serializers.Field) -> serializers.Field:
    """A fresh copy of a bound field (choices set at run time kept: a copy of a
    ChoiceField is rebuilt from its constructor's arguments)."""
    if isinstance(field, serializers.ChoiceField):
        return serializers.ChoiceField(choices=list(field.choices), help_text=field.help_text)
    return deepcopy(field)


def submit_bodies(base: type[serializers.Serializer]) -> dict:
    """The two request bodies of a submit: JSON names a corpus document, multipart uploads
    a file; the other fields of `base` (backend, workload, ...) go with either."""
    shared = {
        name: _unbound(field)
        for name, field in base().fields.items()
        if name not in ("pdfName", "file")
    }
    by_name = inline_serializer(
        name=f"{base.__name__}ByName",
        fields={"pdfName": serializers.CharField(help_text="A corpus document."), **shared},
    )
    by_upload = inline_serializer(
        name=f"{base.__name__}Upload",
        fields={"file": serializers.FileField(help_text="PDF, PNG, JPEG or TIFF"), **shared},
    )
    return {"application/json": by_name, "multipart/form-data": by_upload}
