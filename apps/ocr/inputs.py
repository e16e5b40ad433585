"""The document a request names: a corpus name (`pdfName`) or an uploaded `file`.

Everything that reaches OCRmyPDF passes through here first: names must be exactly one of
the corpus names, uploads are checked by content and size.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import ReturnDict

from apps.ocr import corpus, validation


@dataclass(frozen=True)
class DocumentInput:
    name: str  # corpus name, or the sanitized upload file name
    upload: UploadedFile | None = None
    language: str = "eng"

    def http_payload(self) -> dict:
        """Keyword arguments for an httpx request to an OCR server."""
        if self.upload is None:
            return {"json": {"pdfName": self.name, "language": self.language}}
        self.upload.seek(0)
        return {
            "data": {"language": self.language},
            "files": {"file": (self.name, self.upload.read())},
        }


class DocumentSerializer(serializers.Serializer):
    pdfName = serializers.CharField(
        required=False, max_length=255, help_text="A corpus document, e.g. sample.pdf"
    )
    file = serializers.FileField(required=False, help_text="PDF, PNG, JPEG or TIFF")
    language = serializers.CharField(required=False, default="eng", max_length=32)

    def validate_pdfName(self, value: str) -> str:
        try:
            corpus.resolve(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value

    def validate_file(self, value: UploadedFile) -> UploadedFile:
        try:
            kind = validation.validate_upload(value)
        except validation.InvalidUpload as exc:
            raise serializers.ValidationError(str(exc), code=exc.code) from exc
        value.name = validation.safe_filename(value.name or "upload", kind)
        return value

    @property
    def errors(self):
        """The field errors, plus the upload's refusal code as `code` (e.g. `too_large`)."""
        errors = super().errors
        refused = errors.get("file") if isinstance(errors, dict) else None
        code = getattr(refused[0], "code", None) if refused else None
        if code in validation.UPLOAD_CODES and "code" not in errors:
            return ReturnDict({**errors, "code": code}, serializer=self)
        return errors

    def validate_language(self, value: str) -> str:
        if value not in settings.OCR_LANGUAGES:
            raise serializers.ValidationError(
                f"language {value!r} is not installed; choose one of {settings.OCR_LANGUAGES}"
            )
        return value

    def validate(self, attrs: dict) -> dict:
        if ("pdfName" in attrs) == ("file" in attrs):
            raise serializers.ValidationError("send exactly one of `pdfName` or `file`")
        return attrs

    def document(self) -> DocumentInput:
        data = self.validated_data
        upload = data.get("file")
        name = upload.name if upload is not None else data["pdfName"]
        return DocumentInput(name=name, upload=upload, language=data["language"])


def parse_document(data, files=None) -> DocumentInput:
    """Validate request data; raises rest_framework ValidationError (-> 400)."""
    payload = {
        **{k: data.get(k) for k in ("pdfName", "language") if data.get(k) is not None},
        **({"file": files["file"]} if files and "file" in files else {}),
    }
    serializer = DocumentSerializer(data=payload)
    serializer.is_valid(raise_exception=True)
    return serializer.document()
