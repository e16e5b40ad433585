"""JSON bodies with bounds: size and nesting depth are checked before `json.loads` runs,
so a hostile body (megabytes, or 5,000 nested lists that would end in RecursionError)
is a 400, never a 500. Used by DRF (settings) and by the plain async views."""

import json
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Escapes as units, quotes and brackets: one linear pass finds what nesting depends on.
TOKEN = re.compile(rb'\\.|["\[\]{}]', re.DOTALL)
OPENERS = (b"[", b"{")


class JsonBodyError(ValueError):
    """A JSON body that is too big, too deep or not JSON; the message says which."""


def json_depth(raw: bytes) -> int:
    """Deepest nesting of arrays and objects in `raw` (brackets inside strings ignored)."""
    depth = deepest = 0
    in_string = False
    for match in TOKEN.finditer(raw):
        token = match.group()
        if token == b'"':
            in_string = not in_string
        elif in_string or len(token) == 2:
            continue
        elif token in OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def check_length(length: int | None) -> None:
    """Refuse a declared body length above API_JSON_MAX_BYTES before reading it."""
    if length is not None and length > settings.API_JSON_MAX_BYTES:
        raise JsonBodyError(f"JSON body larger than {settings.API_JSON_MAX_BYTES} bytes")


def load_json(raw: bytes):
    """Parse a bounded JSON body; JsonBodyError when too big, too deep or invalid."""
    check_length(len(raw))
    if json_depth(raw) > settings.API_JSON_MAX_DEPTH:
        raise JsonBodyError(f"JSON nested deeper than {settings.API_JSON_MAX_DEPTH} levels")
    try:
        return json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:
        raise JsonBodyError(f"request body is not valid JSON: {exc}") from exc


def declared_length(meta) -> int | None:
    """The request's CONTENT_LENGTH as an int, None when absent or malformed."""
    try:
        return int(meta.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with the size and depth bounds of `load_json`."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        try:
            if request is not None:
                check_length(declared_length(request.META))
            raw = stream.read(settings.API_JSON_MAX_BYTES + 1) if stream is not None else b""
            return load_json(raw)
        except JsonBodyError as exc:
            raise ParseError(str(exc)) from exc
