"""`manage.py demo` against the real API: it authenticates with OCRLAB_API_TOKEN."""

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_prints_text_of_every_sync_version(api_server, api_token):
    out = io.StringIO()
    call_command("demo", "--api", api_server, stdout=out)
    rows = [line.split() for line in out.getvalue().splitlines() if line[:2] in ("v0", "v1", "v2")]
    assert [(row[0], row[2]) for row in rows] == [("v0", "DONE"), ("v1", "DONE"), ("v2", "DONE")]
