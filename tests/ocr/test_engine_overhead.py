"""What the engine skips to cut OCRmyPDF's overhead, and that the output is unchanged.

See docs/engine.md "Cutting the overhead": dependency probes once per process, image-only
pages handed to Tesseract unrendered, the sandwich text layer, no read-back check.
"""

import io
import subprocess
from pathlib import Path

import pikepdf
import pytest
from ocrmypdf.helpers import Resolution
from pdfminer.high_level import extract_text
from PIL import Image, ImageChops

from apps.ocr import corpus, passthrough, probes
from apps.ocr.engine import OcrError, PredictRequest, run_ocr
from apps.ocr.metrics import cer, normalize

DPI_300 = Resolution(300, 300)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def ocr(path: Path):
    return run_ocr(PredictRequest(source=Path(path), name=Path(path).name))


def page_top(tmp_path: Path, name: str = "sample.pdf", fmt: str = "PNG") -> Path:
    path = tmp_path / f"top.{fmt.lower()}"
    corpus.render_page(name).crop((0, 0, 2550, 760)).save(path, format=fmt, dpi=(300, 300))
    return path


@pytest.fixture
def spawned(monkeypatch) -> list[str]:
    """Command lines of every subprocess started while the test runs."""
    commands: list[str] = []
    original = subprocess.Popen.__init__

    def recording(self, args, *rest, **kwargs):
        commands.append(" ".join(map(str, args)) if not isinstance(args, str) else args)
        return original(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", recording)
    return commands


def first_page_image(document: str) -> Image.Image:
    with pikepdf.open(corpus.resolve(document)) as pdf:
        make = passthrough._page_image(pdf.pages[0], "pnggray", DPI_300)
        assert make is not None
        image = Image.open(io.BytesIO(make(300.0, 300.0)))
        image.load()
    return image


# --- the output is OCRmyPDF's: a searchable PDF with the page and its text layer ----


def test_output_pdf_text_layer_reads_back_with_pdfminer(media_root):
    result = ocr(corpus.resolve("sample.pdf"))
    text = extract_text(media_root / result.pdf)
    assert cer(corpus.truth("sample.pdf"), text) <= 0.01
    with pikepdf.open(media_root / result.pdf) as pdf:
        assert len(pdf.pages) == result.page_count == 1
        images = list(pdf.pages[0].get_images().values())
        assert images and int(images[0].Width) == 2550  # the scan itself is kept, untouched


# --- dependency probes: once per process, failures reported every time -------------


def test_warm_job_runs_no_dependency_probe(tmp_path, spawned):
    source = page_top(tmp_path)
    ocr(source)  # warms the cache if no earlier test did
    spawned.clear()
    ocr(source)
    assert [c for c in spawned if "--version" in c or "--list-langs" in c] == []
    assert len(spawned) == 1 and spawned[0].startswith("tesseract")


def test_missing_tesseract_is_reported_even_with_a_warm_cache(tmp_path, monkeypatch):
    source = page_top(tmp_path)
    ocr(source)
    assert "tesseract" in probes.cached()["versions"]
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OcrError) as caught:
        ocr(source)
    assert caught.value.code == "missing_dependency" and "tesseract" in caught.value.reason
    assert probes.cached()["versions"] == {}  # the failure was not cached
    monkeypatch.undo()
    assert first_words() in normalize(ocr(source).text)  # back again: probed afresh


def test_failed_probe_is_not_cached(tmp_path, monkeypatch):
    probes.forget()
    monkeypatch.setenv("PATH", str(tmp_path))
    for _ in range(2):
        with pytest.raises(OcrError) as caught:
            ocr(page_top(tmp_path))
        assert caught.value.code == "missing_dependency"
    assert probes.cached() == {"versions": {}, "languages": []}


def test_broken_tesseract_after_warm_cache_is_found_by_the_next_job(tmp_path, monkeypatch):
    source = page_top(tmp_path)
    ocr(source)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "tesseract").write_text("#!/bin/sh\necho broken >&2\nexit 1\n")
    (fake / "tesseract").chmod(0o755)
    monkeypatch.setenv("PATH", str(fake))
    with pytest.raises(OcrError):  # this job used the cached probe and failed in OCR
        ocr(source)
    with pytest.raises(OcrError) as caught:  # the next one probes again
        ocr(source)
    assert caught.value.code == "missing_dependency"


def first_words() -> str:
    return " ".join(corpus.truth("sample.pdf").split()[:5])


# --- pages that are one full-page image are not re-rendered ------------------------


@pytest.mark.parametrize("document", ["sample.pdf", "multipage.pdf"])
def test_flate_page_passes_through_with_the_original_pixels(document):
    image = first_page_image(document)
    assert image.mode == "L" and image.size == (2550, 3300)
    assert round(image.info["dpi"][0]) == 300
    assert ImageChops.difference(image, corpus.render_page(document).convert("L")).getbbox() is None


def test_jpeg_page_passes_through_with_its_resolution():
    image = first_page_image("degraded.pdf")
    assert image.format == "JPEG" and image.size == (2550, 3300)
    assert tuple(round(v) for v in image.info["dpi"]) == (300, 300)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_image_uploads_are_not_re_rasterized(tmp_path, fmt):
    passthrough.PASSED_THROUGH.clear()
    result = ocr(page_top(tmp_path, fmt=fmt))
    assert passthrough.PASSED_THROUGH == [1]
    assert first_words() in normalize(result.text)


def edited_sample(tmp_path: Path, edit) -> Path:
    path = tmp_path / "edited.pdf"
    with pikepdf.open(corpus.resolve("sample.pdf")) as pdf:
        edit(pdf, pdf.pages[0])
        pdf.save(path)
    return path


def _rotate(pdf, page):
    page.obj.Rotate = 90


def _add_text(pdf, page):
    page.contents_add(pdf.make_stream(b"BT /F1 12 Tf 72 72 Td (x) Tj ET"))


def _shrink(pdf, page):
    page.obj.Contents = pdf.make_stream(b"q 306 0 0 396 0 0 cm /Im0 Do Q")


def _mask(pdf, page):
    next(iter(page.get_images().values())).Decode = pikepdf.Array([1, 0])


@pytest.mark.parametrize("edit", [_rotate, _add_text, _shrink, _mask])
def test_other_pages_are_rendered_as_before(tmp_path, edit):
    with pikepdf.open(edited_sample(tmp_path, edit)) as pdf:
        assert passthrough._page_image(pdf.pages[0], "pnggray", DPI_300) is None


def test_raster_device_or_resolution_mismatch_is_rendered():
    with pikepdf.open(corpus.resolve("sample.pdf")) as pdf:
        assert passthrough._page_image(pdf.pages[0], "png16m", DPI_300) is None
        assert passthrough._page_image(pdf.pages[0], "pnggray", Resolution(150, 150)) is None


def test_rotated_page_is_still_ocred_through_the_renderer(tmp_path):
    passthrough.PASSED_THROUGH.clear()
    result = ocr(edited_sample(tmp_path, _rotate))
    assert passthrough.PASSED_THROUGH == [] and result.page_count == 1
