"""Refuse request bodies above settings.REQUEST_MAX_BYTES with 413, before Django reads
them: by Content-Length at once, and by counting a streamed (chunked) body as it arrives.

`BodyLimitASGI` wraps the API (ocrproject/asgi.py); `BodyLimitWSGI` wraps the OCR servers
(ocrproject/wsgi.py, gunicorn), which refuse a chunked body of unknown length (411).
"""

import json

TOO_LARGE = 413


def _detail(text: str) -> bytes:
    return json.dumps({"detail": text}).encode()


def _too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes"


def _content_length(value: str | bytes | None) -> int | None:
    try:
        return int(value) if value not in (None, b"", "") else None
    except ValueError:
        return None


class BodyLimitASGI:
    def __init__(self, app, *, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = _content_length(headers.get(b"content-length"))
        if length is not None and length > self.max_bytes:
            return await self._refuse(send)
        state = {"seen": 0, "refused": False}

        async def limited_receive():
            message = await receive()
            state["seen"] += len(message.get("body", b""))
            if state["seen"] > self.max_bytes and not state["refused"]:
                state["refused"] = True
                await self._refuse(send)
                return {"type": "http.disconnect"}  # Django stops reading and answers nothing
            return message

        async def guarded_send(message):
            if not state["refused"]:
                await send(message)

        return await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send) -> None:
        body = _detail(_too_large(self.max_bytes))
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": TOO_LARGE, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class BodyLimitWSGI:
    def __init__(self, app, *, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def __call__(self, environ, start_response):
        length = _content_length(environ.get("CONTENT_LENGTH"))
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if length is not None and length > self.max_bytes:
            return self._refuse(
                start_response, "413 Request Entity Too Large", _too_large(self.max_bytes)
            )
        if length is None and chunked:
            return self._refuse(start_response, "411 Length Required", "send a Content-Length")
        return self.app(environ, start_response)

    def _refuse(self, start_response, status: str, text: str) -> list[bytes]:
        body = _detail(text)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(status, headers)
        return [body]
