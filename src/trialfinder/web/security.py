"""What every response gets, whatever the page: privacy and security headers, a per-response
script nonce for the Content-Security-Policy, a cap on the URL's length, and an access log
that never holds a query string (the patient's place travels in one on `GET /nearest`).

Pure ASGI middleware (no framework): it wraps the application once and costs a few
microseconds a request.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_QUERY_BYTES = 2048
"""A longer query string gets 414: no place, trial id or language needs more."""

access_log = logging.getLogger("trialfinder.web.access")


def content_security_policy(nonce: str, image_sources: tuple[str, ...] = ()) -> str:
    """Scripts only from this server or inline with this response's nonce; nothing from any
    other host, except map tiles from a server the operator configured (`image_sources`)."""
    images = " ".join(("'self'", "data:", *image_sources))
    return "; ".join((
        "default-src 'none'",
        f"script-src 'self' 'nonce-{nonce}'",
        # Inline style attributes (the map's colour swatches) and the referral sheet's
        # <style>: styles cannot run code.
        "style-src 'self' 'unsafe-inline'",
        f"img-src {images}",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ))


class SecurityHeaders:
    """Adds the headers, makes `scope["state"]["nonce"]`, refuses overlong URLs, logs."""

    def __init__(self, app: ASGIApp, image_sources: tuple[str, ...] = ()) -> None:
        self.app = app
        self.image_sources = image_sources

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["nonce"] = nonce
        path = scope.get("path", "")
        static = path.startswith("/static/")
        headers = [
            (b"content-security-policy",
             content_security_policy(nonce, self.image_sources).encode("ascii")),
            (b"referrer-policy", b"no-referrer"),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
            (b"permissions-policy", b"geolocation=(), camera=(), microphone=()"),
        ]
        if not static:
            # Answers name the patient's place: no browser or proxy keeps a copy.
            headers.append((b"cache-control", b"no-store"))
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                names = {name.lower() for name, _value in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in headers if name not in names
                ]
            await send(message)

        try:
            if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
                await _plain(send_with_headers, 414, _too_long(scope))
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            # Method, path and status only: never the query string (a place may be in it),
            # never the client's address.
            access_log.info(
                '"%s %s" %d %.1fms', scope.get("method", "?"), _printable(path), status,
                (time.perf_counter() - started) * 1000,
            )


def _too_long(scope: Scope) -> str:
    """The 414 answer, in the language the browser asks for (the query string, where
    ``lang`` would be, is not read: it is the part that is too long)."""
    from trialfinder.i18n import _, language, negotiate

    header = dict(scope.get("headers", [])).get(b"accept-language", b"")
    with language(negotiate(header.decode("latin-1"))):
        return _("The address is too long.")


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode("ascii"))],
    })
    await send({"type": "http.response.body", "body": body})


def _printable(path: str, limit: int = 200) -> str:
    """A path safe on one log line: no control characters, not too long."""
    cleaned = "".join(ch if ch.isprintable() else "\ufffd" for ch in path[:limit])
    return cleaned + ("…" if len(path) > limit else "")
