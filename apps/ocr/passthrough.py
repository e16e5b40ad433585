"""OCRmyPDF plugin: a page that is one lossless full-page image is not re-rasterized.

OCRmyPDF renders every page it OCRs back to a PNG (pypdfium2 render, then a PNG
encode: ~0.25 s of CPU on an 8.4-megapixel page) even when the page is nothing but one
image at the resolution it would render at, which is what scans and image uploads are
(OCRmyPDF wraps PNG/JPEG/TIFF uploads into such a PDF with img2pdf). For those pages
the image's own compressed data already is a PNG's pixel stream: a Flate stream with
PNG predictors holds exactly the bytes of a PNG's IDAT chunk. This hook writes
that data into a PNG (header, resolution, data; no decoding, no encoding) and hands it
on; Tesseract sees the same pixels the render would have produced.

Anything else returns ``None`` and OCRmyPDF's own rasterizer runs as before: other
content on the page (text, vectors, a second image, annotations), a rotation, an image
not covering the MediaBox or not at the raster resolution, masks, ``/Decode`` arrays,
ICC or indexed colour, JPEG/JBIG2/CCITT data, or a Flate stream without PNG predictors.
"""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import pikepdf
from ocrmypdf import hookimpl

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INCH_M = 0.0254
PNG_PREDICTOR_MIN = 10  # /Predictor 10..15: PNG row filters, one filter byte per row
# (PDF colour space, bits per component) -> (PNG colour type, OCRmyPDF raster devices)
PNG_TYPES = {
    ("/DeviceGray", 1): (0, {"pngmono", "pngmonod"}),
    ("/DeviceGray", 8): (0, {"pnggray"}),
    ("/DeviceRGB", 8): (2, {"png16m"}),
}
COMPONENTS = {"/DeviceGray": 1, "/DeviceRGB": 3}
PAINT_OPERATORS = {"q", "Q", "cm", "Do"}
PASSED_THROUGH: list[int] = []  # page numbers handed on unrendered (tests, counters)
PASSED_THROUGH_KEEP = 64


@hookimpl(tryfirst=True)
def rasterize_pdf_page(
    input_file: Path,
    output_file: Path,
    raster_device,
    raster_dpi,
    pageno: int,
    page_dpi,
    rotation: int | None,
    filter_vector: bool,
    stop_on_soft_error: bool,
    options,
    use_cropbox: bool,
) -> Path | None:
    """Write the page's own image as ``output_file`` if it can stand for the render."""
    if rotation or use_cropbox or getattr(options, "rasterizer", "auto") == "ghostscript":
        return None
    try:
        with pikepdf.open(input_file) as pdf:
            png = _page_png(pdf.pages[pageno - 1], str(raster_device).lower(), raster_dpi)
    except (pikepdf.PdfError, KeyError, ValueError, TypeError, AttributeError) as exc:
        log.debug("page %d: no pass-through (%s)", pageno, exc)
        return None
    if png is None:
        return None
    dpi = page_dpi or raster_dpi
    Path(output_file).write_bytes(png(float(dpi.x), float(dpi.y)))
    PASSED_THROUGH.append(pageno)
    del PASSED_THROUGH[:-PASSED_THROUGH_KEEP]
    return Path(output_file)


def _page_png(page: pikepdf.Page, device: str, raster_dpi):
    """A function dpi -> PNG bytes, or None when the page is not a plain image page."""
    if int(page.obj.get("/Rotate", 0)) % 360 or "/Annots" in page.obj:
        return None
    image = _sole_image(page)
    if image is None or not _covers_mediabox(image[1], page):
        return None
    xobject = image[0]
    width, height = int(xobject.Width), int(xobject.Height)
    x0, y0, x1, y1 = (float(v) for v in page.mediabox)
    if (width, height) != (
        round((x1 - x0) * float(raster_dpi.x) / 72.0),
        round((y1 - y0) * float(raster_dpi.y) / 72.0),
    ):
        return None
    header = _png_header(xobject, device)
    if header is None:
        return None
    data = xobject.read_raw_bytes()
    return lambda dpi_x, dpi_y: _png(header, data, dpi_x, dpi_y)


def _sole_image(page: pikepdf.Page) -> tuple[pikepdf.Stream, list[float]] | None:
    """(image XObject, cm matrix) when the content is only ``q cm /Im Do Q``."""
    instructions = pikepdf.parse_content_stream(page)
    names = [str(instruction.operator) for instruction in instructions]
    if set(names) - PAINT_OPERATORS or names.count("Do") != 1 or names.count("cm") != 1:
        return None
    if names.index("cm") > names.index("Do"):
        return None
    matrix = [float(v) for v in instructions[names.index("cm")].operands]
    name = instructions[names.index("Do")].operands[0]
    xobject = page.obj.Resources.XObject[name]
    if xobject.get("/Subtype") != pikepdf.Name.Image:
        return None
    return xobject, matrix


def _covers_mediabox(matrix: list[float], page: pikepdf.Page) -> bool:
    x0, y0, x1, y1 = (float(v) for v in page.mediabox)
    expected = [x1 - x0, 0.0, 0.0, y1 - y0, x0, y0]
    return all(abs(a - b) < 1e-3 for a, b in zip(matrix, expected, strict=True))


def _png_header(xobject: pikepdf.Stream, device: str) -> bytes | None:
    """PNG IHDR data when the image's Flate data is PNG-ready, else None."""
    if any(key in xobject for key in ("/SMask", "/Mask", "/Decode", "/ImageMask")):
        return None
    filters = xobject.get("/Filter")
    params = xobject.get("/DecodeParms")
    if isinstance(filters, pikepdf.Array):
        if len(filters) != 1:
            return None
        filters = filters[0]
        params = params[0] if isinstance(params, pikepdf.Array) and len(params) == 1 else None
    space, bits = str(xobject.get("/ColorSpace")), int(xobject.get("/BitsPerComponent", 0))
    png_type = PNG_TYPES.get((space, bits))
    if filters != pikepdf.Name.FlateDecode or params is None or png_type is None:
        return None
    if device not in png_type[1] or not _png_predictor(params, xobject, COMPONENTS[space], bits):
        return None
    return struct.pack(
        ">IIBBBBB", int(xobject.Width), int(xobject.Height), bits, png_type[0], 0, 0, 0
    )


def _png_predictor(params: pikepdf.Dictionary, xobject: pikepdf.Stream, colors: int, bits: int):
    return (
        int(params.get("/Predictor", 1)) >= PNG_PREDICTOR_MIN
        and int(params.get("/Colors", 1)) == colors
        and int(params.get("/BitsPerComponent", 8)) == bits
        and int(params.get("/Columns", 1)) == int(xobject.Width)
    )


def _png(header: bytes, data: bytes, dpi_x: float, dpi_y: float) -> bytes:
    """A PNG file: IHDR, pHYs (pixels per metre), one IDAT with ``data``, IEND."""
    phys = struct.pack(">IIB", round(dpi_x / INCH_M), round(dpi_y / INCH_M), 1)
    return b"".join(
        [PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"pHYs", phys)]
        + [_chunk(b"IDAT", data), _chunk(b"IEND", b"")]
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
