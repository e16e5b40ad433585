"""The API keeps its published contract: Schemathesis drives the real API (uvicorn, the
api_server fixture) from the API's own OpenAPI schema and fails on any 5xx, any status
the schema does not declare, a body or content type that breaks the schema, or a method
the schema does not list answered otherwise than 405. Bounded: a few examples per
operation, well under a minute. The sync OCR call (V0) is left out: each example would
run OCR for seconds."""

import subprocess
import sys
from pathlib import Path

import httpx
import jsonschema
import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,unsupported_method"
)
MAX_EXAMPLES = 6
TIME_LIMIT_S = 120


def test_the_api_keeps_its_schema(api_server, api_token, tmp_path):
    schemathesis = Path(sys.executable).parent / "st"
    cmd = [
        str(schemathesis), "run", f"{api_server}/api/schema/", "--url", api_server,
        "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", "1",
        "--header", f"Authorization: Token {api_token}",
        "--exclude-path", "/v0/ocr/sync", "--phases", "examples,coverage,fuzzing",
        "--request-timeout", "30", "--report-dir", str(tmp_path),
        "--suppress-health-check", "all",
    ]  # fmt: skip
    # cwd: Schemathesis keeps a cache directory where it runs
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIME_LIMIT_S, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_a_client_reading_the_schema_can_list_jobs(api_server, auth_headers):
    """A real list answer validates against the schema's own response schema."""
    schema = httpx.get(f"{api_server}/api/schema/?format=json", timeout=30).json()
    operation = schema["paths"]["/api/jobs"]["get"]
    page_schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    body = {"pdfName": "sample.pdf", "backend": "db", "queue_without_worker": True}
    submitted = httpx.post(f"{api_server}/api/jobs", json=body, headers=auth_headers, timeout=30)
    assert submitted.status_code == 202, submitted.text
    page = httpx.get(f"{api_server}/api/jobs", headers=auth_headers, timeout=30).json()
    assert page["count"] >= 1
    document = as_json_schema({**page_schema, "components": schema["components"]})
    jsonschema.Draft202012Validator(document).validate(page)
    assert page["results"][0]["status"] == "QUEUED"


def as_json_schema(node):
    """OpenAPI 3.0's `nullable: true` in JSON Schema's words (what a client does)."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: as_json_schema(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") else converted


def test_undeclared_methods_get_405_before_any_parameter_check(api_server, auth_headers):
    url = f"{api_server}/api/jobs/00000000-0000-0000-0000-000000000000?wait=nonsense"
    for method in ("TRACE", "PUT", "DELETE", "PATCH"):
        response = httpx.request(method, url, headers=auth_headers, timeout=30)
        assert response.status_code == 405, (method, response.text)


def test_an_unknown_url_is_a_plain_404_even_with_debug(client, settings):
    settings.DEBUG = True
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert b"urlpatterns" not in response.content and b"api/jobs" not in response.content
