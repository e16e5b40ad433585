"""The seed engine (apps.ocr.seed_cli): the ocrmypdf command line, as the seed study ran it.

One real OCR of sample.pdf through ``run_ocr`` in seed mode; the command and the environment
checked are the ones the engine passed to the subprocess (recorded, then run for real).
"""

import os
import subprocess
from pathlib import Path

import pikepdf
import pytest

from apps.ocr import corpus, seed_cli
from apps.ocr.engine import OcrError, PredictRequest, run_ocr
from apps.ocr.metrics import cer
from tests.ocr.test_engine import CER_BOUNDS, digital_pdf

LAB_ONLY_OPTIONS = ("--jobs", "-j", "--output-type", "--optimize", "-O", "--skip-text")


@pytest.fixture
def seed_mode(settings, tmp_path):
    settings.OCR_ENGINE_MODE = seed_cli.SEED
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


@pytest.fixture
def launched(monkeypatch) -> list[dict]:
    """Every subprocess.run call of seed_cli (command and kwargs), still run for real."""
    calls: list[dict] = []
    real_run = subprocess.run

    def record(command, **kwargs):
        calls.append({"command": command, **kwargs})
        return real_run(command, **kwargs)

    monkeypatch.setattr(seed_cli.subprocess, "run", record)
    return calls


def seed_ocr(path: Path):
    return run_ocr(PredictRequest(source=path, name=path.name))


def test_seed_mode_reads_the_sample_with_the_cli_and_uncapped_threads(seed_mode, launched):
    result = seed_ocr(corpus.resolve("sample.pdf"))
    assert cer(corpus.truth("sample.pdf"), result.text) <= CER_BOUNDS["sample.pdf"]
    assert result.page_count == 1 and result.empty_pages == []
    [call] = launched
    assert os.environ["OMP_THREAD_LIMIT"] == "1"  # the lab's own processes stay capped
    assert "OMP_THREAD_LIMIT" not in call["env"]
    assert call["command"][1:3] == ["-m", "ocrmypdf"] and "--sidecar" in call["command"]
    assert not set(LAB_ONLY_OPTIONS) & set(call["command"])  # OCRmyPDF's defaults
    with pikepdf.open(seed_mode.MEDIA_ROOT / result.pdf) as pdf:
        assert pdf.open_metadata().pdfa_status  # the default output type: PDF/A


def test_seed_env_drops_only_the_thread_cap():
    base = {"OMP_THREAD_LIMIT": "1", "OMP_NUM_THREADS": "1", "PATH": "/bin"}
    assert seed_cli.seed_env(base) == {"OMP_NUM_THREADS": "1", "PATH": "/bin"}
    assert "OMP_THREAD_LIMIT" not in seed_cli.seed_env()


def test_seed_command_sets_language_sidecar_and_image_dpi_only(tmp_path):
    command = seed_cli.seed_command(
        tmp_path / "in.png",
        tmp_path / "out.pdf",
        sidecar=tmp_path / "out.txt",
        language=["eng", "deu"],
        image_dpi=300,
    )
    assert command[3:] == [
        "-l",
        "eng+deu",
        "--sidecar",
        str(tmp_path / "out.txt"),
        "--image-dpi",
        "300",
        str(tmp_path / "in.png"),
        str(tmp_path / "out.pdf"),
    ]


def test_cli_exit_code_maps_to_the_lab_error_codes(seed_mode, tmp_path):
    """Without --skip-text (the CLI default) a PDF with text is exit 6: prior_ocr."""
    with pytest.raises(OcrError) as caught:
        seed_ocr(digital_pdf(tmp_path / "digital.pdf"))
    assert caught.value.code == "prior_ocr"


@pytest.mark.parametrize(
    ("sidecar", "pages"),
    [
        ("one\n\f", ["one"]),
        ("one  \ntwo\n\fthree\n\f", ["one\ntwo", "three"]),
        ("no form feed", ["no form feed"]),
        ("\f\f", ["", ""]),
    ],
)
def test_sidecar_pages(sidecar, pages):
    assert seed_cli.sidecar_pages(sidecar) == pages
