"""Upload checks by content (magic bytes), never by file name or declared content type.

These checks are cheap (no OCR, no page rendering); they refuse what the OCR engine
could never process so that a job is not queued for it. The engine repeats the
checks that protect the worker (page count, pixels), since corpus files and stored
uploads reach it without passing through here.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from pathlib import PurePosixPath, PureWindowsPath
from typing import IO

import pikepdf
from django.conf import settings
from PIL import Image

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


class InvalidUpload(ValueError):
    """The uploaded file cannot be OCRed; the message says why, for the user."""


def sniff_kind(head: bytes) -> str:
    """Return "pdf", "png", "jpeg" or "tiff" from a file's first bytes.

    Raises InvalidUpload for anything else.
    """
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            return kind
    raise InvalidUpload(
        "Unsupported file type: the content is not a PDF, PNG, JPEG or TIFF file "
        "(checked from the file's first bytes, not its name)."
    )


def validate_upload(f) -> str:
    """Check a Django UploadedFile by content and return its kind.

    Checks: not empty, at most settings.UPLOAD_MAX_BYTES, a known signature; images
    must decode and stay under OCR_MAX_IMAGE_MPIXELS; PDFs must open, be
    unencrypted and have 1..OCR_MAX_PAGES pages. Raises InvalidUpload.
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
        raise InvalidUpload(
            f"The file is too large: {_megabytes(size)} ({size} bytes); "
            f"the limit is {_megabytes(limit)} ({limit} bytes)."
        )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _max_pixels() -> int:
    return int(settings.OCR_MAX_IMAGE_MPIXELS * 1_000_000)


def _check_pixels(width: int, height: int, what: str) -> None:
    if width * height > _max_pixels():
        raise InvalidUpload(
            f"The {what} is too large: {width} x {height} pixels "
            f"({width * height / 1e6:.1f} megapixels); the limit is "
            f"{settings.OCR_MAX_IMAGE_MPIXELS:g} megapixels."
        )


def _check_image(f: IO[bytes], kind: str) -> None:
    """Bound the pixels from the header before decoding, then check the data is whole.

    PNG: ``verify()`` checks every chunk's CRC without decompressing. JPEG and TIFF:
    ``verify()`` reads nothing past the header, so decode instead (JPEG at 1/8
    scale, about 40 ms for a noisy 8-megapixel page); truncation raises OSError.
    """
    try:
        with _open_image(f, kind) as image:
            _check_page_count(getattr(image, "n_frames", 1), "image")
            _check_frames(image)
            _decode_check(image, kind)
    except InvalidUpload:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidUpload(
            f"The image is too large; the limit is {settings.OCR_MAX_IMAGE_MPIXELS:g} megapixels."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidUpload(f"The {kind.upper()} image is damaged or truncated.") from exc


def _open_image(f: IO[bytes], kind: str) -> Image.Image:
    """Open lazily (header only); our own pixel bound replaces Pillow's warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(f, formats=[kind.upper()])


def _check_frames(image: Image.Image) -> None:
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        _check_pixels(*image.size, what="image")
    image.seek(0)


def _decode_check(image: Image.Image, kind: str) -> None:
    if kind == "png":
        image.verify()
        return
    if kind == "jpeg":
        image.draft(image.mode, (image.width // 8, image.height // 8))
    image.load()


def _check_page_count(count: int, what: str) -> None:
    limit = settings.OCR_MAX_PAGES
    if count < 1:
        raise InvalidUpload(f"The {what} has no pages.")
    if count > limit:
        raise InvalidUpload(f"The {what} has {count} pages; the limit is {limit} pages.")


def _check_pdf(f) -> None:
    """Open the PDF with pikepdf: refuse damaged, encrypted, empty or too long ones."""
    _check_pdf_tail(f)
    try:
        with pikepdf.open(_pdf_source(f)) as pdf:
            if pdf.is_encrypted:
                raise InvalidUpload(_ENCRYPTED)
            _check_page_count(len(pdf.pages), "PDF")
            _check_pdf_images(pdf)
    except InvalidUpload:
        raise
    except pikepdf.PasswordError as exc:
        raise InvalidUpload(_ENCRYPTED) from exc
    except (pikepdf.PdfError, ValueError, RuntimeError) as exc:
        raise InvalidUpload("The PDF is damaged or truncated and cannot be read.") from exc


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


def _check_pdf_images(pdf: pikepdf.Pdf) -> None:
    """Refuse an embedded image above the pixel limit (a tiny file can hold a huge one)."""
    for page in pdf.pages:
        for image in page.get_images().values():
            width, height = int(image.get("/Width", 0)), int(image.get("/Height", 0))
            _check_pixels(width, height, what="image inside the PDF")
