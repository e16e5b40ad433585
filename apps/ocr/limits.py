"""The input limits, shared by upload validation and the engine: cost bounded before decoding.

Everything here reads headers only: a PDF's page boxes (MediaBox × UserUnit, no content
stream, no rendering) and an image's header fields (size, frame count), never its pixels.

* Pages: 1..OCR_MAX_PAGES (PDF pages, TIFF frames).
* Pixels of each page as OCRmyPDF would rasterize it: a PDF page's box at RENDER_DPI (the
  resolution OCRmyPDF renders a page without images at), an image's own size; at most
  OCR_MAX_PAGE_MPIXELS per page and OCR_MAX_TOTAL_MPIXELS over the document. A 25 × 25 inch
  vector page is 100 megapixels at 400 dpi: a few hundred bytes of PDF, ~1.8 GB to render.
* Embedded images: at most OCR_MAX_IMAGE_MPIXELS each.
* Animated PNGs are refused from their acTL header (stepping through frames decodes them).

A refusal is an InvalidUpload whose ``code`` says which kind: ``invalid_file``,
``too_large``, ``unsupported_type`` or ``encrypted``.
"""

from __future__ import annotations

import math

import pikepdf
from django.conf import settings
from PIL import Image

RENDER_DPI = 400  # OCRmyPDF's VECTOR_PAGE_DPI
POINTS_PER_INCH = 72
DEFAULT_USER_UNIT = 1.0


UPLOAD_CODES = frozenset({"invalid_file", "too_large", "unsupported_type", "encrypted"})


class InvalidUpload(ValueError):
    """The file cannot be OCRed; the message says why, for the user; ``code`` for machines."""

    def __init__(self, message: str, *, code: str = "invalid_file") -> None:
        super().__init__(message)
        self.code = code


def too_large(message: str) -> InvalidUpload:
    return InvalidUpload(message, code="too_large")


def check_page_count(count: int, what: str) -> None:
    limit = settings.OCR_MAX_PAGES
    if count < 1:
        raise InvalidUpload(f"The {what} has no pages.")
    if count > limit:
        raise too_large(f"The {what} has {count} pages; the limit is {limit} pages.")


def check_pixels(width: int, height: int, what: str) -> None:
    """An image (or a page as rendered) at most OCR_MAX_IMAGE_MPIXELS; ``what`` starts the
    message ("The image")."""
    limit = settings.OCR_MAX_IMAGE_MPIXELS
    if width * height > limit * 1_000_000:
        raise too_large(
            f"{what} is too large: {width} x {height} pixels "
            f"({width * height / 1e6:.1f} megapixels); the limit is {limit:g} megapixels."
        )


def check_page_areas(megapixels: list[float], what: str, *, at: str = "") -> None:
    """Each page at most OCR_MAX_PAGE_MPIXELS, all pages at most OCR_MAX_TOTAL_MPIXELS.

    ``at`` names the resolution the areas were computed at, for the message.
    """
    page_limit, total_limit = settings.OCR_MAX_PAGE_MPIXELS, settings.OCR_MAX_TOTAL_MPIXELS
    for number, area in enumerate(megapixels, start=1):
        if area > page_limit:
            raise too_large(
                f"Page {number} of the {what} is {area:.0f} megapixels{at}; "
                f"the limit is {page_limit:g} megapixels per page."
            )
    if sum(megapixels) > total_limit:
        raise too_large(
            f"The pages of the {what} add up to {sum(megapixels):.0f} megapixels{at}; "
            f"the limit is {total_limit:g} megapixels per document."
        )


def pdf_page_megapixels(pdf: pikepdf.Pdf) -> list[float]:
    """Each page's MediaBox (which bounds its CropBox) × UserUnit, in megapixels at RENDER_DPI.

    Raises TypeError/ValueError/KeyError or a pikepdf error on a malformed box.
    """
    return [_page_megapixels(page) for page in pdf.pages]


def _page_megapixels(page: pikepdf.Page) -> float:
    x0, y0, x1, y1 = (float(value) for value in page.mediabox)
    unit = float(page.obj.get("/UserUnit", DEFAULT_USER_UNIT))
    inches = abs(x1 - x0) * abs(y1 - y0) * (unit / POINTS_PER_INCH) ** 2
    megapixels = inches * RENDER_DPI**2 / 1e6
    if not math.isfinite(megapixels):
        raise ValueError("page box is not a finite size")
    return megapixels


def check_pdf(pdf: pikepdf.Pdf, what: str = "PDF") -> None:
    """Pages, page areas and embedded images of an open PDF, from its objects only."""
    check_page_count(len(pdf.pages), what)
    check_page_areas(pdf_page_megapixels(pdf), what, at=f" at {RENDER_DPI} dpi")
    for page in pdf.pages:
        for image in page.get_images().values():
            width, height = int(image.get("/Width", 0)), int(image.get("/Height", 0))
            check_pixels(width, height, what=f"An image inside the {what}")


def check_image_frames(image: Image.Image, kind: str) -> None:
    """Frame count and pixels per frame from headers; an animated PNG is refused.

    A PNG's ``n_frames`` comes from its acTL chunk (stepping through APNG frames would
    decode them); every APNG frame fits the canvas. Other images are counted by header-only
    seeks (a TIFF's IFD chain; pixel data is read on load only), at most OCR_MAX_PAGES + 1
    of them, so a chain of a million tiny frames costs no more than 51.
    """
    if kind == "png":
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            raise InvalidUpload(
                f"Animated PNGs are not accepted (this one has {frames} frames); "
                "upload a still PNG, a PDF or a multi-page TIFF.",
                code="unsupported_type",
            )
    sizes = _frame_sizes(image, cap=settings.OCR_MAX_PAGES + 1) if kind != "png" else [image.size]
    if len(sizes) > settings.OCR_MAX_PAGES:
        raise too_large(f"The image has more than {settings.OCR_MAX_PAGES} pages (frames).")
    for width, height in sizes:
        check_pixels(width, height, what="The image")
    check_page_areas([w * h / 1e6 for w, h in sizes], "image")


def _frame_sizes(image: Image.Image, *, cap: int) -> list[tuple[int, int]]:
    """The size of each frame, the first `cap` at most (header-only seeks), back at frame 0."""
    sizes = []
    for index in range(cap):
        try:
            image.seek(index)
        except EOFError:
            break
        sizes.append(image.size)
    image.seek(0)
    return sizes
