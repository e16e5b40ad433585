"""Upload checks by content (magic bytes), never by file name or declared content type.

These checks are cheap (no OCR, no page rendering); they refuse what the OCR engine
could never process so that a job is not queued for it. The engine repeats the
checks that protect the worker (page count, pixels), since corpus files and stored
uploads reach it without passing through here.
"""

from __future__ import annotations

import io
import re
import struct
import unicodedata
import warnings
from pathlib import PurePosixPath, PureWindowsPath
from typing import IO

import pikepdf
from django.conf import settings
from PIL import Image

from apps.ocr import limits
from apps.ocr.limits import UPLOAD_CODES, InvalidUpload

__all__ = ["UPLOAD_CODES", "InvalidUpload", "safe_filename", "sniff_kind", "validate_upload"]

KINDS: tuple[str, ...] = ("pdf", "png", "jpeg", "tiff")
EXTENSIONS = {"pdf": ".pdf", "png": ".png", "jpeg": ".jpg", "tiff": ".tif"}
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
HEAD_BYTES = 16
PDF_TAIL_BYTES = 1024
FILENAME_MAX_CHARS = 100
EXTENSION_MAX_CHARS = 8
_ENCRYPTED = "The PDF is encrypted (password-protected); remove the encryption and upload again."
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# What a hostile file can make pikepdf or Pillow raise: each is a 400 (`invalid_file`).
PARSER_ERRORS: tuple[type[Exception], ...] = (
    pikepdf.PdfError,
    OSError,
    SyntaxError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    ArithmeticError,
    struct.error,
    RuntimeError,
    NotImplementedError,
)


def sniff_kind(head: bytes) -> str:
    """Return "pdf", "png", "jpeg" or "tiff" from a file's first bytes.

    Raises InvalidUpload for anything else.
    """
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            return kind
    raise InvalidUpload(
        "Unsupported file type: the content is not a PDF, PNG, JPEG or TIFF file "
        "(checked from the file's first bytes, not its name).",
        code="unsupported_type",
    )


def validate_upload(f) -> str:
    """Check a Django UploadedFile by content and return its kind.

    Checks: not empty, at most settings.UPLOAD_MAX_BYTES, a known signature; then the
    limits of apps/ocr/limits.py from headers only (pages, page areas, pixels, frames);
    images must decode, PDFs must open and be unencrypted. Raises InvalidUpload.
    The file position is left at the start.
    """
    _check_size(f.size)
    f.seek(0)
    kind = sniff_kind(f.read(HEAD_BYTES))
    f.seek(0)
    try:
        if kind == "pdf":
            _check_pdf(f)
        else:
            _check_image(f, kind)
    finally:
        f.seek(0)
    return kind


def safe_filename(name: str, kind: str | None = None) -> str:
    """Return a safe base name: only [A-Za-z0-9._-], at most 100 characters.

    Directory parts (POSIX or Windows) are dropped, accents folded to ASCII, leading
    dots removed. With ``kind``, the extension becomes the right one for that kind.
    """
    base = PureWindowsPath(PurePosixPath(str(name)).name).name
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"\.{2,}", ".", _UNSAFE_CHARS.sub("_", ascii_name)).strip("._-")
    stem, dot, ext = cleaned.rpartition(".")
    if not dot:
        stem, ext = cleaned, ""
    if kind is not None:
        ext = EXTENSIONS[kind].lstrip(".")
    suffix = f".{ext[:EXTENSION_MAX_CHARS]}" if ext else ""
    stem = stem.strip("._-") or "upload"
    return stem[: FILENAME_MAX_CHARS - len(suffix)] + suffix


def _check_size(size: int | None) -> None:
    limit = settings.UPLOAD_MAX_BYTES
    if not size:
        raise InvalidUpload("The file is empty.")
    if size > limit:
        raise limits.too_large(
            f"The file is too large: {_megabytes(size)} ({size} bytes); "
            f"the limit is {_megabytes(limit)} ({limit} bytes)."
        )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _check_image(f: IO[bytes], kind: str) -> None:
    """Bound frames and pixels from the header before decoding, then check the data is whole.

    PNG: ``verify()`` checks every chunk's CRC without decompressing. JPEG and TIFF:
    ``verify()`` reads nothing past the header, so decode instead (JPEG at 1/8
    scale, about 40 ms for a noisy 8-megapixel page); truncation raises OSError.
    """
    try:
        with _open_image(f, kind) as image:
            limits.check_image_frames(image, kind)
            _decode_check(image, kind)
    except InvalidUpload:
        raise
    except Image.DecompressionBombError as exc:
        raise limits.too_large(
            f"The image is too large; the limit is {settings.OCR_MAX_IMAGE_MPIXELS:g} megapixels."
        ) from exc
    except PARSER_ERRORS as exc:
        raise InvalidUpload(f"The {kind.upper()} image is damaged or truncated.") from exc


def _open_image(f: IO[bytes], kind: str) -> Image.Image:
    """Open lazily (header only); our own pixel bound replaces Pillow's warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(f, formats=[kind.upper()])


def _decode_check(image: Image.Image, kind: str) -> None:
    if kind == "png":
        image.verify()
        return
    if kind == "jpeg":
        image.draft(image.mode, (image.width // 8, image.height // 8))
    image.load()


def _check_pdf(f) -> None:
    """Open the PDF with pikepdf: refuse damaged, encrypted, empty, too long or too big ones."""
    _check_pdf_tail(f)
    try:
        with pikepdf.open(_pdf_source(f)) as pdf:
            if pdf.is_encrypted:
                raise InvalidUpload(_ENCRYPTED, code="encrypted")
            limits.check_pdf(pdf)
    except InvalidUpload:
        raise
    except pikepdf.PasswordError as exc:
        raise InvalidUpload(_ENCRYPTED, code="encrypted") from exc
    except PARSER_ERRORS as exc:
        raise InvalidUpload("The PDF is damaged or malformed and cannot be read.") from exc


def _check_pdf_tail(f) -> None:
    """A whole PDF ends with %%EOF (readers look in the last 1024 bytes).

    qpdf silently rebuilds a truncated file from what is left, so this is the cheap
    way to tell a cut-off upload.
    """
    f.seek(max(0, f.size - PDF_TAIL_BYTES))
    tail = f.read(PDF_TAIL_BYTES)
    f.seek(0)
    if b"%%EOF" not in tail:
        raise InvalidUpload("The PDF is truncated or damaged: it has no end-of-file marker.")


def _pdf_source(f):
    """A path for uploads spooled to disk, else an in-memory copy pikepdf can seek."""
    if hasattr(f, "temporary_file_path"):
        return f.temporary_file_path()
    return io.BytesIO(f.read())
