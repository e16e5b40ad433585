"""The seed study's engine: the ``ocrmypdf`` command line in a subprocess.

The lab grew from a study whose OCR server ran OCRmyPDF the way its README shows:
the command line with every default. ``run_ocr`` calls ``seed_ocr`` instead of
OCRmyPDF's Python API when ``settings.OCR_ENGINE_MODE`` is ``"seed"`` (``"lab"``, the
default, is the lab's own engine), so a bench row can reproduce the seed's failure mode:

* ``--jobs`` left at its default, the CPU count;
* no ``OMP_THREAD_LIMIT`` in the subprocess environment (the lab's settings put one in
  ``os.environ`` for every process; here it is removed), so OCRmyPDF lets Tesseract use
  up to 3 OpenMP threads per page (jobs / pages): N such jobs at once on 2 cores fight
  over the cores instead of sharing them;
* default output type (PDF/A, through Ghostscript) and default optimization.

The text comes from the ``--sidecar`` file (Tesseract's text, one form feed per page).
Exit codes become ``SeedExit`` (an OCRmyPDF ``ExitCodeException``), so the engine maps
them to the same OcrError codes as the lab engine's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import ocrmypdf

LAB, SEED = "lab", "seed"
ENGINE_MODES = (LAB, SEED)
UNCAPPED_VARS = ("OMP_THREAD_LIMIT",)  # what the seed's server never set
SIDECAR_SUFFIX = ".txt"
PAGE_BREAK = "\f"
SEED_TIMEOUT_S = 900.0  # a last resort; the callers' own time limits kill the group sooner


class SeedExit(ocrmypdf.exceptions.ExitCodeException):
    """The command line exited non-zero: ``exit_code`` as OCRmyPDF's ExitCode."""

    def __init__(self, returncode: int, message: str) -> None:
        super().__init__(message)
        try:
            self.exit_code = ocrmypdf.ExitCode(returncode)
        except ValueError:  # killed by a signal, or a code OCRmyPDF does not define
            self.exit_code = ocrmypdf.ExitCode.other_error


def seed_command(
    source: Path, output: Path, *, sidecar: Path, language: list[str], image_dpi: int | None
) -> list[str]:
    """``ocrmypdf -l LANG --sidecar TXT [--image-dpi N] IN OUT``: nothing else set."""
    command = [sys.executable, "-m", "ocrmypdf", "-l", "+".join(language)]
    command += ["--sidecar", str(sidecar)]
    if image_dpi:
        command += ["--image-dpi", str(image_dpi)]
    return [*command, str(source), str(output)]


def seed_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without the thread cap."""
    source = os.environ if base is None else base
    return {name: value for name, value in source.items() if name not in UNCAPPED_VARS}


def seed_ocr(
    source: Path,
    output: Path,
    *,
    language: list[str],
    image_dpi: int | None = None,
    **_lab_options: object,
) -> list[str]:
    """OCR ``source`` into the PDF ``output`` with the command line; the text per page.

    Takes the lab engine's options so it can stand in for ``ocrmypdf.ocr``, but uses
    only the language and the image DPI: everything else stays OCRmyPDF's default.
    """
    sidecar = output.with_suffix(SIDECAR_SUFFIX)
    command = seed_command(source, output, sidecar=sidecar, language=language, image_dpi=image_dpi)
    done = subprocess.run(
        command, env=seed_env(), capture_output=True, text=True, timeout=SEED_TIMEOUT_S
    )
    if done.returncode != 0:
        raise SeedExit(done.returncode, _last_line(done.stderr))
    return sidecar_pages(sidecar.read_text(encoding="utf-8"))


def sidecar_pages(text: str) -> list[str]:
    """One string per page: form feeds end pages; lines right-stripped, pages stripped."""
    pieces = text.split(PAGE_BREAK)
    if len(pieces) > 1 and not pieces[-1].strip():
        pieces.pop()  # the form feed after the last page
    return ["\n".join(line.rstrip() for line in page.splitlines()).strip() for page in pieces]


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "the ocrmypdf command line failed"
