"""The OCR engine on the sample corpus and on inputs it must refuse. No database needed.

Accuracy bounds (character error rate, whitespace-normalized), measured on Debian 12 with
Tesseract 5.3 / OCRmyPDF 17.13: sample 0.0 %, multipage 0.0 %, degraded 0.5 % (1.3 % when
the JPEG page was still re-rendered by pdfium; now Tesseract reads its own pixels).
The bounds leave room for other Tesseract builds: clean pages <= 1 %, degraded <= 5 %.
"""

import os
import pickle
import tempfile
import threading
import time
import zlib
from pathlib import Path

import pikepdf
import pypdfium2
import pytest
from django.test import override_settings
from pikepdf import Name
from PIL import Image

from apps.ocr import corpus, engine
from apps.ocr.engine import OcrError, OcrResult, PredictRequest, run_ocr
from apps.ocr.metrics import cer, levenshtein, normalize

CER_BOUNDS = {"sample.pdf": 0.01, "multipage.pdf": 0.01, "degraded.pdf": 0.05}


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory) -> dict[str, tuple[OcrResult, Path]]:
    """Each corpus document OCRed once for the module: name -> (result, MEDIA_ROOT)."""
    media = tmp_path_factory.mktemp("media")
    with override_settings(MEDIA_ROOT=media):
        return {name: (ocr(corpus.resolve(name), name), media) for name in corpus.CORPUS_NAMES}


def ocr(path: Path, name: str | None = None, **kwargs) -> OcrResult:
    return run_ocr(PredictRequest(source=Path(path), name=name or Path(path).name, **kwargs))


def ocr_error(path: Path, **kwargs) -> OcrError:
    with pytest.raises(OcrError) as caught:
        ocr(path, **kwargs)
    return caught.value


def page_top(tmp_path: Path, mode: str = "L", dpi: tuple | None = (300, 300)) -> Path:
    """The first lines of the sample page as a PNG (quick to OCR)."""
    image = corpus.render_page("sample.pdf").crop((0, 0, 2550, 760)).convert(mode)
    path = tmp_path / f"top-{mode}.png"
    image.save(path, **({"dpi": dpi} if dpi else {}))
    return path


def first_line_words(count: int = 5) -> str:
    return " ".join(corpus.truth("sample.pdf").split()[:count])


# --- accuracy and result shape ------------------------------------------------------


@pytest.mark.parametrize("name", corpus.CORPUS_NAMES)
def test_corpus_accuracy_within_bound(corpus_results, name):
    result, _ = corpus_results[name]
    assert cer(corpus.truth(name), result.text) <= CER_BOUNDS[name]


def test_multipage_text_is_per_page_and_in_order(corpus_results):
    result, _ = corpus_results["multipage.pdf"]
    truths = corpus.truth_pages("multipage.pdf")
    assert result.page_count == len(result.pages) == 3
    for page_text, truth in zip(result.pages, truths, strict=True):
        assert cer(truth, page_text) <= CER_BOUNDS["multipage.pdf"]
    assert result.text == "\n\f".join(result.pages)


@pytest.mark.parametrize("name", corpus.CORPUS_NAMES)
def test_result_pdf_is_a_searchable_pdf_under_media_results(corpus_results, name):
    result, media = corpus_results[name]
    assert result.pdf.startswith("results/") and result.pdf.endswith(".pdf")
    path = media / result.pdf
    assert path.read_bytes().startswith(b"%PDF-")
    document = pypdfium2.PdfDocument(path)
    try:
        assert len(document) == result.page_count
        layer = [document[i].get_textpage().get_text_bounded() for i in range(len(document))]
    finally:
        document.close()
    assert [normalize(text) for text in layer] == [normalize(page) for page in result.pages]
    assert result.empty_pages == []


def test_timings_are_recorded(corpus_results):
    timings = corpus_results["sample.pdf"][0].timings
    assert {"total", "ocrmypdf", "extract", "prepare", "lock_wait"} <= timings.keys()
    assert 0 < timings["ocrmypdf"] <= timings["total"]
    assert timings["extract"] < 0.5


def test_results_have_unique_names(corpus_results):
    names = [result.pdf for result, _ in corpus_results.values()]
    assert len(set(names)) == len(names)


# --- images -------------------------------------------------------------------------


def test_png_upload_is_ocred(tmp_path):
    result = ocr(page_top(tmp_path))
    assert result.page_count == 1
    assert first_line_words() in normalize(result.text)


def test_image_without_dpi_and_with_alpha_is_ocred(tmp_path):
    result = ocr(page_top(tmp_path, mode="RGBA", dpi=None))
    assert first_line_words() in normalize(result.text)


def test_multipage_tiff_gives_one_text_per_frame(tmp_path):
    frames = [corpus.render_page("multipage.pdf", i).crop((0, 0, 2550, 500)) for i in range(2)]
    path = tmp_path / "pages.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:], dpi=(300, 300))
    result = ocr(path)
    assert result.page_count == 2
    assert "Part One" in result.pages[0] and "Part Two" in result.pages[1]


def test_huge_pixel_image_is_refused_before_ocr(tmp_path, settings):
    settings.OCR_MAX_IMAGE_MPIXELS = 50
    path = tmp_path / "huge.png"
    Image.new("1", (10_000, 6_000), 1).save(path)
    error = ocr_error(path)
    assert error.code == "too_big" and "60.0 megapixels" in error.reason


# --- PDFs the engine refuses or handles ---------------------------------------------


def pdf_with_placed_image(tmp_path: Path, side_px: int, side_pt: float) -> Path:
    """A small letter-size PDF showing a blank side_px-square image drawn side_pt wide.

    The page is rasterized at the image's resolution, so a 2000 px image drawn one
    inch wide makes a 2000 dpi page: 17000 x 22000 pixels.
    """
    packer = zlib.compressobj(9)
    row = b"\xff" * ((side_px + 7) // 8)
    data = b"".join(packer.compress(row) for _ in range(side_px)) + packer.flush()
    pdf = pikepdf.new()
    image = pdf.make_stream(
        data, Type=Name.XObject, Subtype=Name.Image, Width=side_px, Height=side_px,
        BitsPerComponent=1, ColorSpace=Name.DeviceGray, Filter=Name.FlateDecode,
    )  # fmt: skip
    page = pdf.add_blank_page(page_size=(612, 792))
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    page.Contents = pdf.make_stream(f"q {side_pt} 0 0 {side_pt} 0 0 cm /Im0 Do Q".encode())
    path = tmp_path / "placed.pdf"
    pdf.save(path)
    return path


def test_small_image_on_a_huge_raster_page_is_refused_quickly(tmp_path):
    path = pdf_with_placed_image(tmp_path, side_px=2_000, side_pt=72)
    started = time.perf_counter()
    error = ocr_error(path)
    assert error.code == "too_big" and "Page 1" in error.reason
    assert time.perf_counter() - started < 2, "the page must not be rendered"


def test_too_many_pages_is_refused(settings):
    settings.OCR_MAX_PAGES = 2
    error = ocr_error(corpus.resolve("multipage.pdf"))
    assert error.code == "too_big" and "3 pages" in error.reason


@pytest.mark.parametrize("user_password", ["secret", ""])
def test_encrypted_pdf_is_refused(tmp_path, user_password):
    path = tmp_path / "locked.pdf"
    with pikepdf.open(corpus.resolve("sample.pdf")) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(owner="owner", user=user_password))
    error = ocr_error(path)
    assert error.code == "encrypted" and "encrypted" in error.reason


def digital_pdf(path: Path, text: str = "Hello digital world") -> Path:
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(Type=Name.Font, Subtype=Name.Type1, BaseFont=Name.Helvetica)
    )
    page = pdf.add_blank_page(page_size=(612, 792))
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page.Contents = pdf.make_stream(f"BT /F1 24 Tf 72 700 Td ({text}) Tj ET".encode())
    pdf.save(path)
    return path


def test_pdf_with_text_keeps_its_text_without_ocr(tmp_path):
    """Decision: mode="skip" - pages with text are not OCRed; their text is returned."""
    result = ocr(digital_pdf(tmp_path / "digital.pdf"))
    assert result.pages == ["Hello digital world"]
    assert result.timings["ocrmypdf"] < 1.5  # no Tesseract run


def test_mixed_pdf_ocrs_only_the_scanned_page(tmp_path):
    path = digital_pdf(tmp_path / "mixed.pdf")
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        with pikepdf.open(corpus.resolve("sample.pdf")) as scanned:
            pdf.pages.extend(scanned.pages)
        pdf.save(path)
    result = ocr(path)
    assert result.pages[0] == "Hello digital world"
    assert cer(corpus.truth("sample.pdf"), result.pages[1]) <= CER_BOUNDS["sample.pdf"]


def test_blank_page_is_no_text(tmp_path):
    path = tmp_path / "blank.png"
    Image.new("L", (1275, 1650), 255).save(path, dpi=(150, 150))
    assert ocr_error(path).code == "no_text"


def test_tesseract_timeout_on_every_page_is_timeout(tmp_path, settings):
    settings.OCR_PAGE_TIMEOUT_S = 0.01
    error = ocr_error(page_top(tmp_path))
    assert error.code == "timeout" and "0.01 s" in error.reason


@pytest.mark.parametrize(
    "content", [b"just some text\n", b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"]
)
def test_unreadable_input_is_bad_input(tmp_path, content):
    path = tmp_path / "input.pdf"
    path.write_bytes(content)
    assert ocr_error(path).code == "bad_input"


def test_missing_file_is_bad_input(tmp_path):
    assert ocr_error(tmp_path / "nope.pdf").code == "bad_input"


@pytest.mark.parametrize("language", ["klingon", "", "eng+xx"])
def test_unknown_language_is_bad_input(language):
    error = ocr_error(corpus.resolve("sample.pdf"), language=language)
    assert error.code == "bad_input" and "eng" in error.reason


def test_missing_tesseract_is_missing_dependency(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    error = ocr_error(page_top(tmp_path))
    assert error.code == "missing_dependency" and "tesseract" in error.reason
    assert str(tmp_path) not in error.reason


def test_unexpected_ocrmypdf_failure_is_ocr_failed(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(engine.ocrmypdf, "ocr", explode)
    error = ocr_error(page_top(tmp_path))
    assert error.code == "ocr_failed" and "RuntimeError" in error.reason


def test_request_accepts_a_string_path():
    request = PredictRequest(source=str(corpus.resolve("sample.pdf")), name="sample.pdf")
    assert isinstance(request.source, Path) and request.language == "eng"


# --- process hygiene ----------------------------------------------------------------


def test_temporary_files_are_removed_on_success_and_failure(tmp_path, monkeypatch):
    source = page_top(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    ocr(source)
    ocr_error(source, language="klingon")
    Image.new("L", (600, 600), 255).save(tmp_path / "blank.png", dpi=(300, 300))
    ocr_error(tmp_path / "blank.png")
    assert list(scratch.iterdir()) == []


def test_tesseract_is_limited_to_one_thread():
    assert os.environ["OMP_THREAD_LIMIT"].isdigit()
    assert engine._ocr_options("eng")["jobs"] == 1


def test_concurrent_calls_in_one_process_are_serialized(tmp_path):
    source = page_top(tmp_path)
    results: list[OcrResult] = []
    threads = [threading.Thread(target=lambda: results.append(ocr(source))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = sorted(results, key=lambda result: result.timings["lock_wait"])
    assert second.timings["lock_wait"] >= 0.8 * first.timings["ocrmypdf"]
    assert first_line_words() in normalize(second.text)


def test_ocr_error_survives_pickling():
    error = pickle.loads(pickle.dumps(OcrError("timeout", "Too slow.")))
    assert (error.code, error.reason) == ("timeout", "Too slow.")
    assert isinstance(error, Exception)


# --- the accuracy metric ------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("", "", 0), ("abc", "", 3), ("", "ab", 2), ("kitten", "sitting", 3), ("flaw", "lawn", 2)],
)
def test_levenshtein(a, b, distance):
    assert levenshtein(a, b) == distance == levenshtein(b, a)


def test_cer_normalizes_whitespace_and_typographic_punctuation():
    assert cer("Hello  world,\nit's  here", "Hello world, it’s here\n\f") == 0.0
    assert cer("abcd", "abxd") == 0.25
    assert cer("", "") == 0.0 and cer("", "x") == 1.0
