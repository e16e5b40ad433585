"""Hostile uploads are refused cheaply: a 400 with an error code, fast, with little memory.

The files are built here, tiny: a vector page of 25 x 25 inches (100 megapixels at the
400 dpi OCRmyPDF renders it at), an animated PNG of 10 frames of 49 megapixels, a PDF
whose image /Width is a name. Each is posted to the real validation: /api/jobs, a sync
version (V0, refused before any OCR server is called) and the OCR server's /ocr/predict.
"""

import io
import struct
import time
import zlib

import pikepdf
import psutil
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pikepdf import Name
from PIL import Image

from apps.ocr import corpus
from apps.ocr.validation import InvalidUpload, validate_upload

pytestmark = pytest.mark.django_db(transaction=True)
# CPU seconds of this process (the test client runs the view in it): the wall clock of a
# shared 2-core machine under load says more about the neighbours than about the check.
SECONDS_MAX = 2.0
RSS_GROWTH_MAX_MB = 100
APNG_SIDE_PX = 7_000  # 49 megapixels a frame
APNG_FRAMES = 10


def vector_page_pdf(side_in: float = 25, pages: int = 1) -> bytes:
    """A few hundred bytes: pages of side_in x side_in inches holding one line each."""
    pdf = pikepdf.new()
    for _ in range(pages):
        page = pdf.add_blank_page(page_size=(side_in * 72, side_in * 72))
        page.Contents = pdf.make_stream(b"0 0 m 72 72 l S")
    buffer = io.BytesIO()
    pdf.save(buffer, compress_streams=True)
    return buffer.getvalue()


def malformed_width_pdf() -> bytes:
    """One page showing an image whose /Width is a name instead of a number."""
    pdf = pikepdf.new()
    image = pdf.make_stream(
        b"\x00" * 16, Type=Name.XObject, Subtype=Name.Image, Width=Name.Wide, Height=4,
        BitsPerComponent=8, ColorSpace=Name.DeviceGray,
    )  # fmt: skip
    page = pdf.add_blank_page(page_size=(612, 792))
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    page.Contents = pdf.make_stream(b"q 72 0 0 72 0 0 cm /Im0 Do Q")
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _blank_frame_data(side: int) -> bytes:
    """zlib stream of `side` rows of 8-bit gray zeros (filter byte 0), made row by row."""
    packer, row = zlib.compressobj(9), b"\x00" * (side + 1)
    return b"".join(packer.compress(row) for _ in range(side)) + packer.flush()


def animated_png(side: int = APNG_SIDE_PX, frames: int = APNG_FRAMES) -> bytes:
    """An APNG written chunk by chunk: `frames` full-canvas frames, never held decoded."""
    data, sequence = _blank_frame_data(side), 0
    parts = [
        b"\x89PNG\r\n\x1a\n",
        _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)),
        _chunk(b"acTL", struct.pack(">II", frames, 0)),
    ]
    for index in range(frames):
        control = struct.pack(">IIIIIHHBB", sequence, side, side, 0, 0, 1, 10, 0, 0)
        parts.append(_chunk(b"fcTL", control))
        sequence += 1
        if index == 0:
            parts.append(_chunk(b"IDAT", data))
        else:
            parts.append(_chunk(b"fdAT", struct.pack(">I", sequence) + data))
            sequence += 1
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


@pytest.fixture(scope="module")
def hostile() -> dict[str, tuple[str, bytes]]:
    return {
        "vector_page": ("poster.pdf", vector_page_pdf()),
        "fifty_big_pages": ("posters.pdf", vector_page_pdf(side_in=200, pages=50)),
        "animated_png": ("frames.png", animated_png()),
        "malformed_width": ("width.pdf", malformed_width_pdf()),
    }


EXPECTED_CODES = {
    "vector_page": "too_large",
    "fifty_big_pages": "too_large",
    "animated_png": "unsupported_type",
    "malformed_width": "invalid_file",
}


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


def test_the_files_are_tiny(hostile):
    assert len(hostile["vector_page"][1]) < 1_000
    assert len(hostile["malformed_width"][1]) < 2_000
    assert len(hostile["animated_png"][1]) < 2_000_000


@pytest.mark.parametrize("name", sorted(EXPECTED_CODES))
def test_validation_refuses_fast_with_a_code_and_little_memory(hostile, name):
    filename, data = hostile[name]
    before_mb, started = rss_mb(), time.process_time()
    with pytest.raises(InvalidUpload) as caught:
        validate_upload(SimpleUploadedFile(filename, data))
    elapsed_s, growth_mb = time.process_time() - started, rss_mb() - before_mb
    assert caught.value.code == EXPECTED_CODES[name], caught.value
    assert elapsed_s < SECONDS_MAX
    assert growth_mb < RSS_GROWTH_MAX_MB


def post_file(client: Client, url: str, filename: str, data: bytes, **extra):
    upload = SimpleUploadedFile(filename, data)
    return client.post(url, {"file": upload, **extra})


@pytest.mark.parametrize("name", sorted(EXPECTED_CODES))
@pytest.mark.parametrize(
    ("url", "extra"),
    [("/api/jobs", {"backend": "db"}), ("/v0/ocr/sync", {}), ("/v1/ocr/sync", {})],
)
def test_api_answers_400_with_the_code(api_client, hostile, name, url, extra):
    filename, data = hostile[name]
    before_mb, started = rss_mb(), time.process_time()
    response = post_file(api_client, url, filename, data, **extra)
    elapsed_s, growth_mb = time.process_time() - started, rss_mb() - before_mb
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == EXPECTED_CODES[name] and body["file"]
    assert elapsed_s < SECONDS_MAX and growth_mb < RSS_GROWTH_MAX_MB


@pytest.mark.urls("ocrproject.ocr_urls")
@pytest.mark.parametrize("name", sorted(EXPECTED_CODES))
def test_ocr_server_answers_400_with_the_code(hostile, name):
    filename, data = hostile[name]
    started = time.process_time()
    response = post_file(Client(), "/ocr/predict", filename, data)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == EXPECTED_CODES[name]
    assert time.process_time() - started < SECONDS_MAX


@pytest.mark.parametrize("name", ["sample.pdf", "multipage.pdf", "degraded.pdf"])
def test_the_corpus_passes(name):
    data = corpus.resolve(name).read_bytes()
    assert validate_upload(SimpleUploadedFile(name, data)) == "pdf"


@pytest.mark.parametrize(
    ("width_pt", "height_pt", "pages"), [(595, 842, 50), (612, 792, 50), (842, 1191, 30)]
)
def test_fifty_a4_or_letter_pages_and_thirty_a3_pages_pass(width_pt, height_pt, pages):
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page(page_size=(width_pt, height_pt))
    buffer = io.BytesIO()
    pdf.save(buffer)
    assert validate_upload(SimpleUploadedFile("pages.pdf", buffer.getvalue())) == "pdf"


def test_user_unit_scales_the_page():
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(612, 792))
    page.obj.UserUnit = 4  # a Letter box drawn at 4x: 34 x 44 inches
    buffer = io.BytesIO()
    pdf.save(buffer)
    with pytest.raises(InvalidUpload) as caught:
        validate_upload(SimpleUploadedFile("big.pdf", buffer.getvalue()))
    assert caught.value.code == "too_large" and "megapixels" in str(caught.value)


def test_a_tiff_with_more_frames_than_pages_is_refused_after_51_header_seeks():
    frames = [Image.new("1", (8, 8)) for _ in range(500)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    started = time.process_time()
    with pytest.raises(InvalidUpload) as caught:
        validate_upload(SimpleUploadedFile("many.tif", buffer.getvalue()))
    assert caught.value.code == "too_large" and "more than 50 pages" in str(caught.value)
    assert time.process_time() - started < SECONDS_MAX
