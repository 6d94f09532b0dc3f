"""Who may talk to the dashboard, checked on every request before any route runs (pages, JSON,
the SSE feed and the actions alike).

- Loopback without a token: only requests whose ``Host`` names the loopback interface, so that a
  web page elsewhere cannot reach the dashboard through a DNS name rebound to 127.0.0.1.
- With a token (required on any other bind): the token in ``Authorization: Bearer``, or in the
  cookie a first visit with ``?token=`` sets; compared in constant time.
- Actions (anything but GET and HEAD): the request must come from the dashboard's own page: its
  ``Origin`` names this very host (or, without ``Origin``, ``Sec-Fetch-Site`` says same-origin).
  A cross-site form or script cannot pass this, and the cookie is ``SameSite=Strict`` besides.

Every answer carries headers that keep model output inert even if a bug put it into markup: a
content security policy with no inline script, no sniffing, no framing, no referrer."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "iter_dashboard_token"
SAFE_METHODS = {"GET", "HEAD"}
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    return host.strip("[]") in {"127.0.0.1", "localhost", "::1"} or host.startswith("127.")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _hostname(host_header: str) -> str:
    """``Host`` without its port (``[::1]:8765`` -> ``[::1]``)."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Guard:
    """ASGI middleware: refuses what the rules above refuse, adds the security headers to the rest."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        method = scope["method"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        problem = self._problem(headers, method)
        if problem == "token" and method in SAFE_METHODS and self.token and _same(query.get("token", ""), self.token):
            # A first visit from the printed URL: keep the token in a cookie and drop it from the address bar.
            rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
            await _redirect(send, scope["path"] + (f"?{rest}" if rest else ""), self.token)
            return
        if problem:
            status, text = {
                "host": (403, "this dashboard answers on its loopback address only; open http://127.0.0.1:PORT/"),
                "token": (401, "a token is required: open the URL that `iter dashboard` printed"),
                "origin": (403, "actions are accepted only from the dashboard's own page"),
            }[problem]
            await _plain(send, status, text)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, secured)

    def _problem(self, headers: dict[str, str], method: str) -> str:
        host = headers.get("host", "")
        if self.token is None and not is_loopback(_hostname(host)):
            return "host"
        if self.token is not None and not self._has_token(headers):
            return "token"
        if method not in SAFE_METHODS and not _same_origin(headers, host):
            return "origin"
        return ""

    def _has_token(self, headers: dict[str, str]) -> bool:
        assert self.token is not None
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and _same(auth[7:].strip(), self.token):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is simply no token
            return False
        return COOKIE in cookie and _same(cookie[COOKIE].value, self.token)


def _same_origin(headers: dict[str, str], host: str) -> bool:
    origin = headers.get("origin")
    if origin is not None:
        return origin in (f"http://{host}", f"https://{host}")
    return headers.get("sec-fetch-site") == "same-origin"


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    start_headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*start_headers, *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str, token: str) -> None:
    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode("latin-1")),
                (b"set-cookie", cookie.encode("latin-1")),
                (b"content-length", b"0"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
