"""Headers every viewer response carries, and the sign-in check.

Transcript content is hostile input. The pages render it with Jinja2's
autoescape (server side) and ``textContent`` (browser side); the
Content-Security-Policy below is the second wall: scripts only from the
viewer's own static files (no inline script, no ``eval``), no plugins, no
framing, no form posts elsewhere.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._cookie import COOKIE_NAME, CookieSigner

__all__ = ["CSP", "SecurityHeaders", "safe_next", "same_origin", "signed_in"]

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeaders:
    """ASGI middleware: add the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in _HEADERS if item[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def signed_in(request: Request, signer: CookieSigner) -> bool:
    return signer.valid(request.cookies.get(COOKIE_NAME))


def safe_next(value: str | None, default: str) -> str:
    """A same-site path to return to after sign-in (never another host)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 0x21 for ch in value):
        return default
    return value


def same_origin(request: Request) -> bool:
    """A form post from the viewer's own pages (or a client that sends no Origin)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")
