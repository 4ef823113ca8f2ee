"""The viewer's sign-in cookie: signed, expiring, never the token itself.

A signed-in browser holds ``<issued>.<expires>.<nonce>.<signature>`` where the
signature is HMAC-SHA256 over the rest with the viewer's secret. Nothing in it
can be turned back into the token that signed in. Signing out forgets the
nonce, so a copy of the cookie taken before sign-out stops working too (in this
process; a restart with a random secret ends every sign-in).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from typing import Final

__all__ = ["COOKIE_NAME", "CookieSigner"]

COOKIE_NAME: Final = "ingress_viewer"
#: Signed-out nonces remembered (oldest forgotten first; their cookies expire anyway).
_REVOKED_MAX: Final = 10_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class CookieSigner:
    """Issues and checks sign-in cookies. ``secret`` None: a random one per process."""

    def __init__(self, secret: bytes | None = None, *, max_age: int = 12 * 3600) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.max_age = max_age
        self._revoked: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CookieSigner(max_age={self.max_age})"

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())

    def issue(self, *, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        body = f"{issued}.{issued + self.max_age}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._sign(body)}"

    def _parts(self, value: str) -> tuple[int, str] | None:
        """(expires, nonce) of a cookie this signer issued, else None."""
        body, _, signature = value.rpartition(".")
        if not body or not hmac.compare_digest(
            signature.encode("ascii", "replace"), self._sign(body).encode()
        ):
            return None
        fields = body.split(".")
        if len(fields) != 3 or not fields[1].isdigit():
            return None
        return int(fields[1]), fields[2]

    def valid(self, value: str | None, *, now: float | None = None) -> bool:
        """True for an unexpired cookie this signer issued and nobody signed out."""
        if not value:
            return False
        parts = self._parts(value)
        if parts is None:
            return False
        expires, nonce = parts
        if expires <= (now if now is not None else time.time()):
            return False
        with self._lock:
            return nonce not in self._revoked

    def revoke(self, value: str | None) -> None:
        """Sign-out: this cookie is no longer accepted, even if a copy exists."""
        parts = self._parts(value) if value else None
        if parts is None:
            return
        with self._lock:
            self._revoked[parts[1]] = None
            while len(self._revoked) > _REVOKED_MAX:
                self._revoked.popitem(last=False)
