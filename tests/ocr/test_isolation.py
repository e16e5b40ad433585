"""The OCR server's limits: a request past its memory or time limit costs the request only.

The engine is replaced in the parent before the fork (so the child inherits the stand-in):
one allocates far past the cap, one sleeps, one starts a grandchild and sleeps. The real
engine runs once, on the corpus sample, through the OCR server's view.
"""

import os
import subprocess
import time

import pytest
from django.test import Client

from apps.ocr import engine, isolation
from apps.ocr.engine import OcrError, PredictRequest

REQUEST = PredictRequest(source="/nonexistent.pdf", name="x.pdf")
MEMORY_LIMIT_MB = 200


def _allocate(request):
    return bytearray(4 * 1024 * 1024 * 1024)  # 4 GB, far past the cap


def _sleep(request):
    time.sleep(60)


def test_memory_past_the_limit_is_a_memory_error_not_a_dead_server(monkeypatch):
    monkeypatch.setattr(engine, "run_ocr", _allocate)
    with pytest.raises(OcrError) as caught:
        isolation.run_ocr_limited(REQUEST, memory_limit_mb=MEMORY_LIMIT_MB, time_limit_s=30)
    assert caught.value.code == "memory" and f"{MEMORY_LIMIT_MB} MB" in caught.value.reason


def test_time_past_the_limit_kills_the_child_and_its_children(monkeypatch, tmp_path):
    marker = tmp_path / "grandchild.pid"

    def start_grandchild_and_sleep(request):
        proc = subprocess.Popen(["sleep", "60"])
        marker.write_text(str(proc.pid))
        time.sleep(60)

    monkeypatch.setattr(engine, "run_ocr", start_grandchild_and_sleep)
    started = time.monotonic()
    with pytest.raises(OcrError) as caught:
        isolation.run_ocr_limited(REQUEST, memory_limit_mb=0, time_limit_s=1.0)
    assert caught.value.code == "timeout"
    assert time.monotonic() - started < 5
    grandchild = int(marker.read_text())
    time.sleep(0.2)
    assert not _alive(grandchild), "the kill must reach the whole process group"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_an_ocr_error_in_the_child_reaches_the_caller():
    with pytest.raises(OcrError) as caught:
        isolation.run_ocr_limited(REQUEST, memory_limit_mb=MEMORY_LIMIT_MB, time_limit_s=30)
    assert caught.value.code == "bad_input"


def test_a_child_that_dies_is_ocr_failed(monkeypatch):
    monkeypatch.setattr(engine, "run_ocr", lambda request: os.kill(os.getpid(), 9))
    with pytest.raises(OcrError) as caught:
        isolation.run_ocr_limited(REQUEST, memory_limit_mb=0, time_limit_s=30)
    assert caught.value.code == "ocr_failed" and "SIGKILL" in caught.value.reason


@pytest.mark.urls("ocrproject.ocr_urls")
def test_the_ocr_server_answers_504_past_its_time_limit(monkeypatch, settings):
    settings.OCR_SERVER_TIME_LIMIT_S = 0.5
    monkeypatch.setattr(engine, "run_ocr", _sleep)
    response = Client().post(
        "/ocr/predict", {"pdfName": "sample.pdf"}, content_type="application/json"
    )
    assert response.status_code == 504 and response.json()["code"] == "timeout"


@pytest.mark.urls("ocrproject.ocr_urls")
def test_the_ocr_server_ocrs_in_the_child_and_keeps_the_probes_warm():
    response = Client().post(
        "/ocr/predict", {"pdfName": "sample.pdf"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["pages"] == 1 and response.json()["text"]
    assert engine.probes.cached()["versions"], "the child's probe answers come back"
