"""Hostile JSON bodies get a 400 on every POST endpoint, never a 500 (RecursionError)."""

import json

import pytest
from django.conf import settings

from apps.ocr.parsers import JsonBodyError, json_depth, load_json

pytestmark = pytest.mark.django_db(transaction=True)
POST_ENDPOINTS = [
    "/v0/ocr/sync",
    "/v1/ocr/sync",
    "/v2/ocr/sync",
    "/v3/ocr/jobs",
    "/v4/ocr/jobs",
    "/v5/ocr/jobs",
    "/v6/ocr/jobs",
    "/api/jobs",
    "/ocr/predict",
]
DEEP_LIST = b"[" * 5000 + b"]" * 5000
DEEP_OBJECT = b'{"a":' * 5000 + b"1" + b"}" * 5000


def oversized() -> bytes:
    padding = "x" * (settings.API_JSON_MAX_BYTES + 1)
    return json.dumps({"pdfName": "sample.pdf", "padding": padding}).encode()


def just_too_deep() -> bytes:
    depth = settings.API_JSON_MAX_DEPTH + 1
    return b'{"pdfName": "sample.pdf", "x": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@pytest.mark.parametrize(
    "make_body", [lambda: DEEP_LIST, lambda: DEEP_OBJECT, just_too_deep, oversized]
)
def test_hostile_json_is_a_400(api_client, settings, path, make_body):
    if path == "/ocr/predict":  # mounted by the OCR servers only
        settings.ROOT_URLCONF = "ocrproject.ocr_urls"
    response = api_client.post(path, make_body(), content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["detail"]


def test_shallow_nesting_and_brackets_in_strings_pass(api_client):
    body = {
        "backend": "db",
        "pdfName": "sample.pdf",
        "workload": "noop",
        "tag": "[[[[{{{{" * 8,
        "extra": [[{"a": [1]}]],
    }
    response = api_client.post("/api/jobs", body, content_type="application/json")
    assert response.status_code == 202, response.content


def test_depth_ignores_brackets_in_strings_and_escapes():
    assert json_depth(b'{"a": [1, [2]], "b": "[[[[\\"[["}') == 3
    assert json_depth(DEEP_LIST) == 5000
    assert json_depth(b'"' + b'\\"' * 1000) == 0


def test_load_json_names_the_problem():
    with pytest.raises(JsonBodyError, match="deeper than"):
        load_json(DEEP_LIST)
    with pytest.raises(JsonBodyError, match="larger than"):
        load_json(oversized())
    with pytest.raises(JsonBodyError, match="not valid JSON"):
        load_json(b"{nope")
    assert load_json(b"") == {}
