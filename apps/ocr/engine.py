"""The OCR engine: the only module that calls OCRmyPDF.

``run_ocr`` takes an already-validated PDF, PNG, JPEG or TIFF and returns the text of
each page plus a searchable PDF stored under MEDIA_ROOT/results. Options are chosen
for throughput with one job per process (see docs/engine.md):

* ``jobs=1`` and ``OMP_THREAD_LIMIT=1``: one core per job; N worker processes scale
  on N cores instead of fighting over them.
* ``output_type="pdf"``, ``optimize=0``, no linearization: no PDF/A conversion with
  Ghostscript, no image optimization.
* ``mode="skip"``: pages that already carry text are kept as they are and their text
  is read from the PDF; other pages are OCRed.
* Overhead cuts (docs/engine.md): dependency probes once per process (``probes``),
  image-only pages not re-rendered (``passthrough`` plugin), Tesseract's own text-only
  PDF as the text layer (``pdf_renderer="sandwich"``), output to an open file.
* Pages and pixels are bounded before OCRmyPDF starts, so a tiny file holding an
  enormous page is refused (``too_big``) instead of being rendered.
* A page whose OCR times out is kept without text; if no page has any text at all,
  the run fails with ``timeout`` (a timeout was logged) or ``no_text`` (blank input).
* ``settings.OCR_ENGINE_MODE = "seed"`` runs the seed study's way instead (``seed_cli``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import ocrmypdf
import pikepdf
import pypdfium2
from django.conf import settings
from ocrmypdf.pdfinfo import PdfInfo
from PIL import Image

from apps.ocr import limits, probes, seed_cli
from apps.ocr.validation import PARSER_ERRORS, InvalidUpload, sniff_kind

# Tesseract's OpenMP threads: one per process (OMP_NUM_THREADS does not cap it).
# OCRmyPDF only honours a numeric value; anything else is replaced by "1".
if not os.environ.get("OMP_THREAD_LIMIT", "").isdigit():
    os.environ["OMP_THREAD_LIMIT"] = "1"

log = logging.getLogger(__name__)

RESULTS_DIR = "results"
DEFAULT_IMAGE_DPI = 300
MIN_CREDIBLE_DPI = 96  # OCRmyPDF refuses images at or below this resolution
NO_LINEARIZE_MB = 1e9  # fast_web_view threshold that is never reached
PAGE_SEPARATOR = "\n\f"
IMAGE_MODES_AS_IS = {"1", "L", "RGB"}
PASSTHROUGH_PLUGIN = "apps.ocr.passthrough"  # image-only pages are not re-rasterized

probes.install()  # tesseract --version / --list-langs once per process, not per job

# OCRmyPDF's API is not re-entrant across threads of one process.
_OCR_LOCK = threading.Lock()


@dataclass(frozen=True)
class PredictRequest:
    """One OCR request: ``source`` is an absolute path to an already-validated file."""

    source: Path
    name: str
    language: str = "eng"

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", Path(self.source))  # accept a str too


@dataclass
class OcrResult:
    """Text per page, the searchable PDF (relative to MEDIA_ROOT) and timings in seconds."""

    pages: list[str]
    page_count: int
    pdf: str
    timings: dict[str, float]
    empty_pages: list[int] = field(default_factory=list)  # 1-based, e.g. OCR timed out

    @property
    def text(self) -> str:
        """All pages, separated by a form feed on its own line."""
        return PAGE_SEPARATOR.join(self.pages)


class OcrError(Exception):
    """OCR failed: ``code`` is a short machine code, ``reason`` a user-facing message.

    Codes: encrypted, prior_ocr, bad_input, missing_dependency, timeout, too_big,
    no_text, ocr_failed.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


_EXIT_CODES: dict[int, tuple[str, str]] = {
    ocrmypdf.ExitCode.bad_args: ("bad_input", "The file cannot be OCRed with these options."),
    ocrmypdf.ExitCode.input_file: ("bad_input", "The file is not a readable PDF or image."),
    ocrmypdf.ExitCode.missing_dependency: (
        "missing_dependency",
        "The OCR server is missing a program or language it needs.",
    ),
    ocrmypdf.ExitCode.already_done_ocr: ("prior_ocr", "The PDF already contains text."),
    ocrmypdf.ExitCode.encrypted_pdf: (
        "encrypted",
        "The PDF is encrypted (password-protected); remove the encryption and try again.",
    ),
}


def run_ocr(request: PredictRequest) -> OcrResult:
    """OCR ``request.source`` and return its text per page and a searchable PDF.

    Raises OcrError (see its codes). Temporary files are always removed.
    """
    started = time.perf_counter()
    with _OCR_LOCK, tempfile.TemporaryDirectory(prefix="ocr-") as tmp:
        timings = {"lock_wait": time.perf_counter() - started}
        work = Path(tmp)
        with _timed(timings, "prepare"):
            source, options = _prepare(request, work)
        with _timed(timings, "ocrmypdf"), _timeout_log() as timeouts:
            seed_pages = _call_ocrmypdf(source, work / "out.pdf", options, request)
        with _timed(timings, "extract"):
            pages = _extract_pages(work / "out.pdf") if seed_pages is None else seed_pages
        _check_text(pages, timed_out=bool(timeouts))
        with _timed(timings, "store"):
            pdf = _store_result(work / "out.pdf")
    timings["total"] = time.perf_counter() - started
    empty = [number for number, page in enumerate(pages, start=1) if not page]
    return OcrResult(
        pages=pages, page_count=len(pages), pdf=pdf, timings=timings, empty_pages=empty
    )


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = time.perf_counter() - start


def _ocr_options(language: str) -> dict:
    """Throughput options, one job per process (reasons in docs/engine.md)."""
    return {
        "language": _languages(language),
        "jobs": 1,
        "output_type": "pdf",
        "optimize": 0,
        "mode": "skip",
        "progress_bar": False,
        "fast_web_view": NO_LINEARIZE_MB,
        "tesseract_timeout": settings.OCR_PAGE_TIMEOUT_S,
        "max_image_mpixels": settings.OCR_MAX_IMAGE_MPIXELS,
        "pdf_renderer": "sandwich",
        "plugins": [PASSTHROUGH_PLUGIN],
    }


def _languages(language: str) -> list[str]:
    """Split "eng+deu" and check each against settings.OCR_LANGUAGES."""
    requested = [part for part in language.split("+") if part]
    unknown = [part for part in requested if part not in settings.OCR_LANGUAGES]
    if not requested or unknown:
        raise OcrError(
            "bad_input",
            f"OCR language {language!r} is not available; choose from: "
            f"{', '.join(settings.OCR_LANGUAGES)}.",
        )
    return requested


def _prepare(request: PredictRequest, work: Path) -> tuple[Path, dict]:
    """Check the input's size limits; images may be rewritten into ``work``."""
    options = _ocr_options(request.language)
    kind = _sniff(request)
    if kind == "pdf":
        _check_pdf(request.source)
        return request.source, options
    source, dpi = _prepare_image(request.source, work)
    if dpi:
        options["image_dpi"] = dpi
    return source, options


def _sniff(request: PredictRequest) -> str:
    try:
        with request.source.open("rb") as stream:
            return sniff_kind(stream.read(16))
    except OSError as exc:
        raise OcrError("bad_input", f"The file {request.name!r} cannot be read.") from exc
    except InvalidUpload as exc:
        raise OcrError("bad_input", str(exc)) from exc


def _check_pdf(path: Path) -> None:
    """Limits from the page boxes first (nothing rendered), then each image page's pixels
    as OCRmyPDF would rasterize it (its images' resolution over the whole page)."""
    with _limits_as_ocr_errors():
        with pikepdf.open(path) as pdf:
            limits.check_pdf(pdf)
        info = PdfInfo(path)
        for page in info.pages:
            if page is not None and page.images:  # (None only for pages PdfInfo did not check)
                limits.check_pixels(
                    page.width_pixels, page.height_pixels, f"Page {page.pageno + 1} as rendered"
                )


@contextmanager
def _limits_as_ocr_errors() -> Iterator[None]:
    """InvalidUpload and parser errors of a hostile file become OcrError."""
    try:
        yield
    except InvalidUpload as exc:
        code = {"too_large": "too_big", "encrypted": "encrypted"}.get(exc.code, "bad_input")
        raise OcrError(code, str(exc)) from exc
    except ocrmypdf.ExitCodeException as exc:
        raise _from_exit_code(exc) from exc
    except pikepdf.PasswordError as exc:
        raise OcrError(*_EXIT_CODES[ocrmypdf.ExitCode.encrypted_pdf]) from exc
    except Image.DecompressionBombError as exc:
        raise OcrError("too_big", "The image has too many pixels.") from exc
    except PARSER_ERRORS as exc:
        raise OcrError("bad_input", "The file is damaged and cannot be read.") from exc


def _prepare_image(path: Path, work: Path) -> tuple[Path, int | None]:
    """Bound pages and pixels; flatten alpha/palette/CMYK/16-bit images to RGB or L.

    Returns the file to OCR and an ``image_dpi`` when the image has no credible DPI.
    """
    with _limits_as_ocr_errors(), _open_image(path) as image:
        limits.check_image_frames(image, (image.format or "").lower())
        dpi = _credible_dpi(image)
        if getattr(image, "n_frames", 1) > 1 or image.mode in IMAGE_MODES_AS_IS:
            return path, None if dpi else DEFAULT_IMAGE_DPI
        flat = _flatten(image)
    target = work / "input.png"
    flat.save(target, format="PNG", compress_level=1, dpi=dpi or (DEFAULT_IMAGE_DPI,) * 2)
    return target, None


def _open_image(path: Path) -> Image.Image:
    """Open lazily (header only); the pixel bound is checked by the caller."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def _credible_dpi(image: Image.Image) -> tuple[float, float] | None:
    dpi = image.info.get("dpi")
    return dpi if dpi and min(dpi) > MIN_CREDIBLE_DPI else None


def _flatten(image: Image.Image) -> Image.Image:
    """Composite transparency on white; return an "L" or "RGB" image."""
    if image.mode.startswith(("I", "F")):  # 16/32-bit grayscale
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, "white")
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat.convert("L") if image.mode == "LA" else flat


def _call_ocrmypdf(
    source: Path, output: Path, options: dict, request: PredictRequest
) -> list[str] | None:
    """Run OCRmyPDF in process; map its exceptions to OcrError. In seed mode, run its
    command line instead and return the sidecar's pages (lab mode: None).

    OCRmyPDF writes into an open file: given a stream, it skips reading back and
    decoding every stream of the PDF it has just written (its ``check_pdf``, ~0.05 s on
    an 8-megapixel page); the engine opens the output right after to read its text.
    """
    probes.revalidate()
    try:
        if settings.OCR_ENGINE_MODE == seed_cli.SEED:
            with _as_ocr_errors(request):
                return seed_cli.seed_ocr(source, output, **options)
        with output.open("wb") as stream:
            _ocrmypdf_errors(source, stream, options, request)
        return None
    except OcrError:
        probes.forget()  # whatever failed, the next job checks its programs again
        raise


def _ocrmypdf_errors(
    source: Path, output: BinaryIO | Path, options: dict, request: PredictRequest
) -> None:
    with _as_ocr_errors(request):
        ocrmypdf.ocr(source, output, **options)


@contextmanager
def _as_ocr_errors(request: PredictRequest) -> Iterator[None]:
    """OCRmyPDF's exceptions (API or command line: seed_cli.SeedExit) as OcrError."""
    try:
        yield
    except ocrmypdf.ExitCodeException as exc:
        raise _from_exit_code(exc, request) from exc
    except Image.DecompressionBombError as exc:
        raise OcrError("too_big", "A page has too many pixels to OCR.") from exc
    except Exception as exc:
        log.exception("OCRmyPDF failed on %s", request.name)
        raise OcrError("ocr_failed", f"OCR failed unexpectedly ({type(exc).__name__}).") from exc


def _from_exit_code(exc: ocrmypdf.ExitCodeException, request=None) -> OcrError:
    code, reason = _EXIT_CODES.get(exc.exit_code, ("ocr_failed", "OCR failed."))
    detail = _detail(exc, request)
    log.warning("OCRmyPDF %s (exit %s): %s", type(exc).__name__, int(exc.exit_code), detail)
    if code in {"bad_input", "missing_dependency", "ocr_failed"} and detail:
        reason = f"{reason} {detail}"
    return OcrError(code, reason)


def _detail(exc: Exception, request: PredictRequest | None) -> str:
    """First line of the exception message, without server paths."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if request is not None:
        text = text.replace(str(request.source), request.name)
    return re.sub(r"(?:/[^\s/:'\"]+)+/([^\s/:'\"]+)", r"\1", text)[:300]


class _TimeoutHandler(logging.Handler):
    """Counts OCRmyPDF's "[tesseract] took too long to OCR - skipping" warnings."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "took too long" in record.getMessage():
            self.records.append(record.getMessage())


@contextmanager
def _timeout_log() -> Iterator[list[str]]:
    handler = _TimeoutHandler()
    logger = logging.getLogger("ocrmypdf")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def _extract_pages(pdf_path: Path) -> list[str]:
    """Text of each page of the output PDF (OCR layer or pre-existing text)."""
    document = pypdfium2.PdfDocument(pdf_path)
    try:
        return [_page_text(document[index]) for index in range(len(document))]
    finally:
        document.close()


def _page_text(page: pypdfium2.PdfPage) -> str:
    textpage = page.get_textpage()
    try:
        raw = textpage.get_text_bounded()
    finally:
        textpage.close()
        page.close()
    lines = (line.rstrip() for line in raw.replace("\r\n", "\n").split("\n"))
    return "\n".join(lines).strip()


def _check_text(pages: list[str], *, timed_out: bool) -> None:
    if any(pages):
        return
    if timed_out:
        raise OcrError(
            "timeout",
            f"OCR took longer than {settings.OCR_PAGE_TIMEOUT_S:g} s per page "
            "and no text was recognised.",
        )
    raise OcrError("no_text", "No text was found in the document (blank or unreadable pages).")


def _store_result(pdf_path: Path) -> str:
    """Move the searchable PDF to MEDIA_ROOT/results/<uuid>.pdf; return the relative path."""
    relative = Path(RESULTS_DIR) / f"{uuid.uuid4().hex}.pdf"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(pdf_path, target)
    return relative.as_posix()
