"""OCRmyPDF plugin: a page that is one full-page image is not re-rasterized.

OCRmyPDF renders every page it OCRs back to a PNG (pypdfium2 render, then a PNG
encode: ~0.25 s of CPU on an 8.4-megapixel page) even when the page is nothing but one
image at the resolution it would render at, which is what scans and image uploads are
(OCRmyPDF wraps PNG/JPEG/TIFF uploads into such a PDF with img2pdf). For those pages
the image's own compressed data already is an image file's content: a Flate stream
with PNG predictors holds exactly the bytes of a PNG's IDAT chunk, and a DCT stream is
a JPEG file. This hook writes that data into a PNG (header, resolution, data) or a JPEG
(with a JFIF resolution segment), without decoding or encoding anything, and hands it
on. Tesseract then reads the page's own pixels (pdfium's render resamples them by a
fraction of a pixel: 3301 rows for 3300, cropped back by OCRmyPDF).

Anything else returns ``None`` and OCRmyPDF's own rasterizer runs as before: other
content on the page (text, vectors, a second image, annotations), a rotation, an image
not covering the MediaBox or not at the raster resolution, masks, ``/Decode`` arrays,
ICC or indexed colour, JBIG2/CCITT/LZW or chained filters, JPEG parameters
(``/ColorTransform``), or a Flate stream without PNG predictors.
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
JPEG_SOI = b"\xff\xd8"
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
    dpi = page_dpi or raster_dpi
    try:
        with pikepdf.open(input_file) as pdf:
            image = _page_image(pdf.pages[pageno - 1], str(raster_device).lower(), raster_dpi)
            data = image and image(float(dpi.x), float(dpi.y))
    except (pikepdf.PdfError, KeyError, ValueError, TypeError, AttributeError) as exc:
        log.debug("page %d: no pass-through (%s)", pageno, exc)
        return None
    if not data:
        return None
    Path(output_file).write_bytes(data)
    PASSED_THROUGH.append(pageno)
    del PASSED_THROUGH[:-PASSED_THROUGH_KEEP]
    return Path(output_file)


def _page_image(page: pikepdf.Page, device: str, raster_dpi):
    """A function (dpi_x, dpi_y) -> image file bytes, or None if the page must be rendered."""
    if int(page.obj.get("/Rotate", 0)) % 360 or "/Annots" in page.obj:
        return None
    image = _sole_image(page)
    if image is None or not _covers_mediabox(image[1], page):
        return None
    xobject = image[0]
    x0, y0, x1, y1 = (float(v) for v in page.mediabox)
    if (int(xobject.Width), int(xobject.Height)) != (
        round((x1 - x0) * float(raster_dpi.x) / 72.0),
        round((y1 - y0) * float(raster_dpi.y) / 72.0),
    ):
        return None
    if any(key in xobject for key in ("/SMask", "/Mask", "/Decode", "/ImageMask")):
        return None
    space, bits = str(xobject.get("/ColorSpace")), int(xobject.get("/BitsPerComponent", 0))
    kind = PNG_TYPES.get((space, bits))
    if kind is None or device not in kind[1]:
        return None
    filter_name, params = _single_filter(xobject)
    if filter_name == pikepdf.Name.FlateDecode and _png_ready(params, xobject, space, bits):
        header = struct.pack(
            ">IIBBBBB", int(xobject.Width), int(xobject.Height), bits, kind[0], 0, 0, 0
        )
        data = xobject.read_raw_bytes()
        return lambda dpi_x, dpi_y: _png(header, data, dpi_x, dpi_y)
    if filter_name == pikepdf.Name.DCTDecode and params is None and bits == 8:
        data = xobject.read_raw_bytes()
        return lambda dpi_x, dpi_y: _jpeg_with_density(data, dpi_x, dpi_y)
    return None


def _single_filter(xobject: pikepdf.Stream) -> tuple[object, pikepdf.Dictionary | None]:
    """(filter name, its parameters) of a one-filter stream, else (None, None)."""
    filters, params = xobject.get("/Filter"), xobject.get("/DecodeParms")
    if isinstance(filters, pikepdf.Array):
        if len(filters) != 1:
            return None, None
        filters = filters[0]
        params = params[0] if isinstance(params, pikepdf.Array) and len(params) == 1 else None
    if params is not None and not isinstance(params, pikepdf.Dictionary):
        params = None
    return filters, params


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
    # pikepdf's stubs type operands as Object; a Do operand is a Name at run time
    xobject = page.resources.XObject[name]  # type: ignore[call-overload]
    if xobject.get("/Subtype") != pikepdf.Name.Image:
        return None
    return xobject, matrix


def _covers_mediabox(matrix: list[float], page: pikepdf.Page) -> bool:
    x0, y0, x1, y1 = (float(v) for v in page.mediabox)
    expected = [x1 - x0, 0.0, 0.0, y1 - y0, x0, y0]
    return all(abs(a - b) < 1e-3 for a, b in zip(matrix, expected, strict=True))


def _png_ready(params, xobject: pikepdf.Stream, space: str, bits: int) -> bool:
    """Flate data with PNG row filters whose layout matches the image: a PNG's IDAT."""
    return (
        params is not None
        and int(params.get("/Predictor", 1)) >= PNG_PREDICTOR_MIN
        and int(params.get("/Colors", 1)) == COMPONENTS[space]
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


def _jpeg_with_density(data: bytes, dpi_x: float, dpi_y: float) -> bytes:
    """The JPEG with a JFIF APP0 segment giving its resolution (replaced or inserted).

    OCRmyPDF reads the page image's DPI, and Tesseract sizes its text by it.
    """
    if data[:2] != JPEG_SOI:
        raise ValueError("not a JPEG stream")
    density = round(dpi_x), round(dpi_y)
    app0 = b"\xff\xe0" + struct.pack(">H5sBBBHHBB", 16, b"JFIF\0", 1, 1, 1, *density, 0, 0)
    rest = data[2:]
    if rest[:2] == b"\xff\xe0" and rest[4:9] == b"JFIF\0":
        rest = rest[2 + struct.unpack(">H", rest[2:4])[0] :]
    return JPEG_SOI + app0 + rest
