"""The OCR server's one endpoint: `POST /ocr/predict` runs `run_ocr` in a killable child
(apps/ocr/isolation.py) and answers: 504 `timeout`, 422 `memory` when a limit is hit."""

import os
import socket
import tempfile
from pathlib import Path

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.ocr import corpus
from apps.ocr.engine import OcrError, OcrResult, PredictRequest
from apps.ocr.inputs import DocumentSerializer
from apps.ocr.isolation import run_ocr_limited

ERROR_STATUS = {"missing_dependency": 500, "timeout": 504, "ocr_failed": 500, "memory": 422}


class PredictView(APIView):
    # Internal: only the OCR servers mount it (ocrproject/ocr_urls.py), reached by the API
    # on a private address; callers of the lab authenticate at the API.
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_classes: list = []

    class OutputSerializer(serializers.Serializer):
        text = serializers.CharField()
        pages = serializers.IntegerField()
        page_texts = serializers.ListField(child=serializers.CharField())
        timings = serializers.DictField(child=serializers.FloatField())
        pdf = serializers.CharField()
        server = serializers.CharField()

    @extend_schema(request=DocumentSerializer, responses=OutputSerializer)
    def post(self, request):
        serializer = DocumentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        document = serializer.document()
        try:
            result = self._run(document)
        except OcrError as exc:
            code = ERROR_STATUS.get(exc.code, status.HTTP_422_UNPROCESSABLE_ENTITY)
            return Response({"detail": exc.reason, "code": exc.code}, status=code)
        return Response(
            {
                "text": result.text,
                "pages": result.page_count,
                "page_texts": result.pages,
                "timings": result.timings,
                "pdf": result.pdf,
                "server": f"{socket.gethostname()}:{os.getpid()}",
            }
        )

    @staticmethod
    def _run(document):
        if document.upload is None:
            return _ocr(corpus.resolve(document.name), document)
        with tempfile.TemporaryDirectory(prefix="ocr-upload-") as tmp:
            source = Path(tmp) / document.name
            with source.open("wb") as out:
                for chunk in document.upload.chunks():
                    out.write(chunk)
            return _ocr(source, document)


def _ocr(source: Path, document) -> OcrResult:
    """OCR in a child under OCR_SERVER_MEMORY_LIMIT_MB and OCR_SERVER_TIME_LIMIT_S."""
    request = PredictRequest(source=source, name=document.name, language=document.language)
    return run_ocr_limited(
        request,
        memory_limit_mb=settings.OCR_SERVER_MEMORY_LIMIT_MB,
        time_limit_s=settings.OCR_SERVER_TIME_LIMIT_S,
    )
