"""Upload checks by content: what is accepted, what is refused and why."""

import io
import os
import re
import zlib

import pikepdf
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from pikepdf import Name
from PIL import Image

from apps.ocr import corpus
from apps.ocr.validation import InvalidUpload, safe_filename, sniff_kind, validate_upload


def upload(data: bytes, name: str = "scan.pdf", content_type: str = "application/pdf"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def image_bytes(fmt: str, size=(1275, 600), mode: str = "L", **params) -> bytes:
    """A crop of the sample page (a few lines of text) in ``fmt``."""
    page = corpus.render_page("sample.pdf").crop((0, 0, *size)).convert(mode)
    buffer = io.BytesIO()
    page.save(buffer, format=fmt, dpi=(300, 300), **params)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sample_pdf() -> bytes:
    return corpus.resolve("sample.pdf").read_bytes()


# --- sniff_kind ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"%PDF-1.7\n%\xe2\xe3", "pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"II*\x00\x08\x00\x00\x00", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
    ],
)
def test_sniff_kind_reads_the_signature(head, kind):
    assert sniff_kind(head) == kind


@pytest.mark.parametrize(
    "head", [b"", b"hello world", b"<html>", b"PK\x03\x04", b"GIF89a", b" %PDF-1.4", b"\x89PNG"]
)
def test_sniff_kind_refuses_other_content(head):
    with pytest.raises(InvalidUpload, match="not a PDF, PNG, JPEG or TIFF"):
        sniff_kind(head)


# --- accepted -----------------------------------------------------------------------


def test_accepts_a_corpus_pdf_and_rewinds(sample_pdf):
    f = upload(sample_pdf)
    assert validate_upload(f) == "pdf"
    assert f.tell() == 0


@pytest.mark.parametrize(
    ("fmt", "kind", "params"),
    [
        ("PNG", "png", {}),
        ("JPEG", "jpeg", {"quality": 85}),
        ("TIFF", "tiff", {}),
        ("TIFF", "tiff", {"compression": "tiff_lzw"}),
    ],
)
def test_accepts_images_by_content_whatever_the_name(fmt, kind, params):
    f = upload(image_bytes(fmt, **params), name="misleading.pdf", content_type="text/plain")
    assert validate_upload(f) == kind


def test_accepts_a_multipage_tiff():
    frames = [corpus.render_page("multipage.pdf", i).crop((0, 0, 1275, 600)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    assert validate_upload(upload(buffer.getvalue(), name="pages.tif")) == "tiff"


def test_accepts_a_pdf_spooled_to_disk(sample_pdf):
    f = TemporaryUploadedFile("scan.pdf", "application/pdf", len(sample_pdf), None)
    f.write(sample_pdf)
    f.seek(0)
    try:
        assert validate_upload(f) == "pdf"
    finally:
        f.close()


# --- refused ------------------------------------------------------------------------


def refused(f) -> str:
    with pytest.raises(InvalidUpload) as caught:
        validate_upload(f)
    return str(caught.value)


def test_refuses_an_empty_file():
    assert refused(upload(b"")) == "The file is empty."


def test_refuses_a_file_over_the_size_limit_and_names_the_limit(settings, sample_pdf):
    settings.UPLOAD_MAX_BYTES = 100_000
    message = refused(upload(sample_pdf))
    assert "too large" in message and "100000 bytes" in message
    assert f"({len(sample_pdf)} bytes)" in message


def test_refuses_a_text_file_renamed_pdf():
    f = upload(b"Dear user,\nthis is plain text.\n", name="invoice.pdf")
    assert "not a PDF, PNG, JPEG or TIFF" in refused(f)


def test_refuses_html_named_png():
    assert "not a PDF" in refused(upload(b"<html></html>", name="x.png", content_type="image/png"))


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.999])
def test_refuses_a_truncated_pdf(sample_pdf, fraction):
    assert "truncated" in refused(upload(sample_pdf[: int(len(sample_pdf) * fraction)]))


def test_refuses_garbage_behind_a_pdf_header():
    data = b"%PDF-1.4\n" + os.urandom(4000) + b"\n%%EOF\n"
    assert "damaged" in refused(upload(data))


@pytest.mark.parametrize(("fmt", "params"), [("PNG", {}), ("JPEG", {}), ("TIFF", {})])
def test_refuses_a_truncated_image(fmt, params):
    data = image_bytes(fmt, **params)
    assert "damaged or truncated" in refused(upload(data[: len(data) // 2], name="x.img"))


@pytest.mark.parametrize("user_password", ["secret", ""])
def test_refuses_an_encrypted_pdf(sample_pdf, user_password):
    buffer = io.BytesIO()
    with pikepdf.open(io.BytesIO(sample_pdf)) as pdf:
        pdf.save(buffer, encryption=pikepdf.Encryption(owner="owner", user=user_password))
    assert "encrypted" in refused(upload(buffer.getvalue()))


def test_refuses_a_pdf_with_too_many_pages(settings):
    settings.OCR_MAX_PAGES = 2
    data = corpus.resolve("multipage.pdf").read_bytes()
    assert refused(upload(data)) == "The PDF has 3 pages; the limit is 2 pages."


def test_refuses_a_pdf_without_pages():
    buffer = io.BytesIO()
    pikepdf.new().save(buffer)
    assert refused(upload(buffer.getvalue())) == "The PDF has no pages."


def test_refuses_an_image_with_too_many_pixels(settings):
    settings.OCR_MAX_IMAGE_MPIXELS = 50
    buffer = io.BytesIO()
    Image.new("1", (10_000, 6_000), 1).save(buffer, format="PNG")  # 60 MP in ~10 kB
    message = refused(upload(buffer.getvalue(), name="bomb.png"))
    assert "10000 x 6000 pixels" in message and "50 megapixels" in message


def tiny_pdf_with_huge_image(side_px: int = 20_000) -> bytes:
    """A small PDF whose one page shows a blank 1-bit image of side_px x side_px pixels."""
    packer = zlib.compressobj(9)
    row = b"\xff" * ((side_px + 7) // 8)
    data = b"".join(packer.compress(row) for _ in range(side_px)) + packer.flush()
    pdf = pikepdf.new()
    image = pdf.make_stream(
        data,
        Type=Name.XObject,
        Subtype=Name.Image,
        Width=side_px,
        Height=side_px,
        BitsPerComponent=1,
        ColorSpace=Name.DeviceGray,
        Filter=Name.FlateDecode,
    )
    page = pdf.add_blank_page(page_size=(612, 792))
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    page.Contents = pdf.make_stream(b"q 612 0 0 792 0 0 cm /Im0 Do Q")
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


def test_refuses_a_tiny_pdf_holding_a_huge_image():
    pdf = tiny_pdf_with_huge_image()
    assert len(pdf) < 100_000
    assert "400.0 megapixels" in refused(upload(pdf, name="tiny.pdf"))


# --- safe_filename ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("scan.pdf", "pdf", "scan.pdf"),
        ("../../etc/passwd", None, "passwd"),
        ("../../etc/passwd", "pdf", "passwd.pdf"),
        ("/var/www/../secret.PDF", "pdf", "secret.pdf"),
        ("C:\\Users\\me\\My Scan (1).PDF", "pdf", "My_Scan_1.pdf"),
        ("résumé final.png", "png", "resume_final.png"),
        ("photo.PNG", "jpeg", "photo.jpg"),
        ("pages.tiff", "tiff", "pages.tif"),
        (".htaccess", None, "htaccess"),
        ("...", "pdf", "upload.pdf"),
        ("", "png", "upload.png"),
        ("a\x00b;rm -rf $HOME.pdf", "pdf", "a_b_rm_-rf_HOME.pdf"),
        ("noextension", "jpeg", "noextension.jpg"),
    ],
)
def test_safe_filename(name, kind, expected):
    assert safe_filename(name, kind) == expected


def test_safe_filename_is_at_most_100_chars_and_keeps_the_extension():
    name = safe_filename("x" * 300 + ".pdf", "pdf")
    assert len(name) == 100 and name.endswith(".pdf")
    assert re.fullmatch(r"[A-Za-z0-9._-]+", safe_filename("日本語 ∞ <script>.pdf", "pdf"))
