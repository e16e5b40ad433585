"""OCRmyPDF's dependency probes, run once per process instead of once per job.

Every ``ocrmypdf.ocr()`` call checks its programs again: ``tesseract --version`` four
times (version check, 5.4.0 check, thresholding support, the PDF's creator tag) and
``tesseract --list-langs`` once, ~0.1 s of CPU per job. The installed programs do not
change under a running worker, so ``install()`` wraps the two probe functions with a
per-process cache:

* only successful answers are cached; a failed probe raises OCRmyPDF's own
  ``MissingDependencyError`` (exit 3, ``missing_dependency``) every time it fails;
* before each job ``revalidate()`` looks the cached programs up on PATH (a few stat
  calls) and forgets them if one is gone, so OCRmyPDF's probe reports it as before;
* ``forget()`` empties the cache; the engine calls it after any failed job, so a
  broken program or a removed language pack is found by the next job's probe.

The wrapped functions are module attributes of the pinned OCRmyPDF (17.13); a test
checks that one job runs no probe subprocess once the cache is warm.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable

from ocrmypdf._exec import _probe, tesseract

_LOCK = threading.Lock()
_versions: dict[tuple, str] = {}
_languages: dict[str, frozenset[str]] = {}
_original_get_version: Callable[..., str] = _probe.get_version
_original_get_languages: Callable[[], set[str]] = tesseract.get_languages


def _get_version(program: str, **kwargs) -> str:
    """``ocrmypdf.subprocess.get_version`` with successful answers cached."""
    env = kwargs.get("env")
    key = (program, tuple(sorted(kwargs.items(), key=lambda item: item[0]))) if not env else None
    if key is not None:
        with _LOCK:
            if key in _versions:
                return _versions[key]
    version = _original_get_version(program, **kwargs)  # raises MissingDependencyError
    if key is not None:
        with _LOCK:
            _versions[key] = version
    return version


def _get_languages() -> set[str]:
    """``tesseract --list-langs`` with a successful answer cached."""
    with _LOCK:
        cached = _languages.get("tesseract")
    if cached is not None:
        return set(cached)
    found = _original_get_languages()  # raises MissingDependencyError
    with _LOCK:
        _languages["tesseract"] = frozenset(found)
    return set(found)


def install() -> None:
    """Route OCRmyPDF's probes through the per-process cache (idempotent)."""
    _probe.get_version = _get_version
    tesseract.get_languages = _get_languages


def uninstall() -> None:
    """Restore OCRmyPDF's own probes (scripts/measure_engine.py); the cache is kept."""
    _probe.get_version = _original_get_version
    tesseract.get_languages = _original_get_languages


def revalidate() -> None:
    """Forget the cache if a cached program is no longer on PATH (a few stat calls)."""
    with _LOCK:
        programs = {key[0] for key in _versions}
    if any(shutil.which(program) is None for program in programs):
        forget()


def forget() -> None:
    """Empty the cache: the next job probes its programs again."""
    with _LOCK:
        _versions.clear()
        _languages.clear()


def snapshot() -> tuple[dict, dict]:
    """The cache as plain data (a forked child sends it back to its parent)."""
    with _LOCK:
        return dict(_versions), dict(_languages)


def restore(state: tuple[dict, dict] | None) -> None:
    """Make this process's cache the snapshot (None: keep it as it is)."""
    if state is None:
        return
    versions, languages = state
    with _LOCK:
        _versions.clear()
        _versions.update(versions)
        _languages.clear()
        _languages.update(languages)


def cached() -> dict[str, object]:
    """What is cached now: ``{"versions": {...}, "languages": [...]}`` (for tests)."""
    with _LOCK:
        return {
            "versions": {key[0]: value for key, value in _versions.items()},
            "languages": sorted(_languages.get("tesseract", ())),
        }
