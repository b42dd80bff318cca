"""Who may call the server, and how much they may send: bearer token, body limit.

Both are plain ASGI middleware, so they guard every route alike, the event
stream and the web UI included. The token is compared in constant time.
The browser UI cannot set a header on a page load: opening
``/?token=TOKEN`` once sets a same-site, HTTP-only cookie that stands for
the header from then on.
"""

from __future__ import annotations

import hmac
import json
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

__all__ = ["COOKIE", "BodyLimit", "TokenCheck"]

COOKIE = "fanflow_token"

Scope = dict[str, Any]
Receive = Any
Send = Any


async def _reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class TokenCheck:
    """Refuse every request that does not carry `token` (header ``Authorization: Bearer``)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = self._bearer(headers.get(b"authorization", b""))
        if given is None:
            given = self._cookie(headers.get(b"cookie", b""))
        if given is not None and hmac.compare_digest(given, self.token):
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        offered = (query.get("token") or [""])[0].encode()
        if scope["path"] == "/" and offered and hmac.compare_digest(offered, self.token):
            cookie = f"{COOKIE}={offered.decode()}; Path=/; HttpOnly; SameSite=Strict"
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await _reply(
            send,
            401,
            "missing or wrong bearer token (Authorization: Bearer TOKEN)",
            [(b"www-authenticate", b"Bearer")],
        )

    @staticmethod
    def _bearer(value: bytes) -> bytes | None:
        scheme, _, credentials = value.partition(b" ")
        return credentials.strip() if scheme.lower() == b"bearer" and credentials else None

    @staticmethod
    def _cookie(value: bytes) -> bytes | None:
        if not value:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(value.decode("latin-1"))
        except Exception:
            return None
        morsel = jar.get(COOKIE)
        return morsel.value.encode() if morsel is not None else None


class BodyLimit:
    """Refuse request bodies larger than `limit` bytes with 413, before a handler reads them."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = f"request body larger than {self.limit} bytes"
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _reply(send, 413, too_big, [])
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(too_big)
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge as exc:
            await _reply(send, 413, str(exc), [])


class BodyTooLarge(Exception):
    """A chunked body grew past the limit."""
