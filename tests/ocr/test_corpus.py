"""The sample corpus: deterministic, image-only, safe names, known truth."""

import hashlib
import io
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pikepdf
import pytest
from django.core.management import call_command
from django.test import override_settings

from apps.ocr import corpus
from apps.ocr.corpus import CORPUS_NAMES, UnknownDocument

EXPECTED_PAGES = {"sample.pdf": 1, "multipage.pdf": 3, "degraded.pdf": 1}


@pytest.fixture
def fresh_var(settings, tmp_path):
    """An empty VAR_DIR, so ensure_corpus has to generate."""
    settings.VAR_DIR = tmp_path
    return tmp_path / "corpus"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A corpus generated once for the module."""
    var = tmp_path_factory.mktemp("var")
    with override_settings(VAR_DIR=var):
        return corpus.ensure_corpus()


@pytest.fixture
def populated_var(settings, tmp_path, generated):
    """A VAR_DIR holding a copy of the generated corpus."""
    shutil.copytree(generated, tmp_path / "corpus")
    settings.VAR_DIR = tmp_path
    return tmp_path / "corpus"


def test_names_are_the_pdf_file_names():
    assert CORPUS_NAMES == ("sample.pdf", "multipage.pdf", "degraded.pdf")


def test_ensure_corpus_generates_every_pdf_and_truth(generated):
    directory = generated
    for name in CORPUS_NAMES:
        assert (directory / name).read_bytes().startswith(b"%PDF-")
        text = (directory / name).with_suffix(".txt").read_text(encoding="utf-8")
        assert text == corpus.truth(name)
    assert not list(directory.glob("*.tmp")), "temporary files left behind"


def test_ensure_corpus_is_cheap_and_leaves_files_alone_when_present(populated_var):
    mtimes = {path: path.stat().st_mtime_ns for path in populated_var.iterdir()}
    started = time.perf_counter()
    assert corpus.ensure_corpus() == populated_var == corpus.corpus_dir()
    assert time.perf_counter() - started < 0.05
    assert {path: path.stat().st_mtime_ns for path in populated_var.iterdir()} == mtimes


def test_ensure_corpus_regenerates_a_missing_file_identically(populated_var):
    before = (populated_var / "degraded.pdf").read_bytes()
    (populated_var / "degraded.pdf").unlink()
    corpus.ensure_corpus()
    assert (populated_var / "degraded.pdf").read_bytes() == before


def test_ensure_corpus_regenerates_everything_for_a_new_version(populated_var, monkeypatch):
    monkeypatch.setattr(corpus, "CORPUS_VERSION", "test-next")
    (populated_var / "sample.txt").write_text("stale")
    corpus.ensure_corpus()
    assert (populated_var / "sample.txt").read_text() == corpus.truth("sample.pdf")
    assert (populated_var / "VERSION").read_text() == "test-next"


def test_ensure_corpus_is_safe_when_called_concurrently(fresh_var):
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: corpus.ensure_corpus(), range(2)))
    assert results == [fresh_var] * 2
    for name in CORPUS_NAMES:
        with pikepdf.open(fresh_var / name) as pdf:
            assert len(pdf.pages) == EXPECTED_PAGES[name]
    assert not list(fresh_var.glob("*.tmp"))


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_generation_is_byte_for_byte_deterministic(name):
    first = hashlib.sha256(corpus._document_pdf(name)).hexdigest()
    assert hashlib.sha256(corpus._document_pdf(name)).hexdigest() == first


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_documents_are_scanned_looking_image_only_letter_pages(name):
    with pikepdf.open(corpus.resolve(name)) as pdf:
        assert len(pdf.pages) == EXPECTED_PAGES[name] == len(corpus.truth_pages(name))
        for page in pdf.pages:
            assert [float(v) for v in page.mediabox] == [0, 0, 612, 792]  # US Letter
            (image,) = page.get_images().values()
            assert (image.Width, image.Height) == (2550, 3300)  # 300 dpi, 8.4 megapixels
            assert "/Font" not in page.Resources
            assert b"BT" not in page.Contents.read_bytes()  # no text operators


def test_sample_is_a_page_of_english_prose():
    words = corpus.truth("sample.pdf").split()
    assert 150 <= len(words) <= 250
    assert words[:3] == ["The", "Keeper", "of"]


def test_truth_joins_pages_with_form_feeds():
    pages = corpus.truth_pages("multipage.pdf")
    assert corpus.truth("multipage.pdf") == "\n\f".join(pages)
    assert [page.splitlines()[0] for page in pages] == [
        "Notes on Bread, Part One",
        "Notes on Bread, Part Two",
        "Notes on Bread, Part Three",
    ]


def test_degraded_page_is_noisy_but_seeded():
    image = corpus.render_page("degraded.pdf")
    clean = corpus.render_page("sample.pdf")
    assert image.size == clean.size and image.mode == "L"
    histogram = image.histogram()
    assert sum(histogram[1:250]) > 0.5 * sum(histogram)  # gray noise everywhere
    assert image.tobytes() == corpus.render_page("degraded.pdf").tobytes()


def test_resolve_returns_the_file_in_the_corpus_dir():
    path = corpus.resolve("sample.pdf")
    assert path == corpus.corpus_dir() / "sample.pdf" and path.is_file()


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "../sample.pdf",
        "/etc/passwd",
        "sample",
        "SAMPLE.PDF",
        "sample.pdf/",
        " sample.pdf",
        "corpus/sample.pdf",
        "sample.txt",
        "",
        None,
        b"sample.pdf",
    ],
)
def test_resolve_refuses_anything_but_an_exact_name(name):
    with pytest.raises(UnknownDocument, match="choose one of: sample.pdf, multipage.pdf"):
        corpus.resolve(name)
    with pytest.raises(ValueError):
        corpus.truth(name)


def test_missing_font_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus, "FONT_DIR", tmp_path)
    corpus._fonts.cache_clear()
    try:
        with pytest.raises(corpus.CorpusFontMissing, match="apt-get install fonts-dejavu-core"):
            corpus.render_page("sample.pdf")
    finally:
        corpus._fonts.cache_clear()


def test_make_corpus_command_prints_the_paths(populated_var):
    out = io.StringIO()
    call_command("make_corpus", stdout=out)
    printed = out.getvalue()
    for name in CORPUS_NAMES:
        assert str(populated_var / name) in printed
    assert re.search(r"multipage\.pdf .*3 page", printed)
