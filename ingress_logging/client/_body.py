"""The capped reply-body reader both clients use.

:class:`CappedBody` makes every decision about a reply body (too large by its
Content-Length, too large by what arrived, past the deadline); the blocking
and the asyncio client only move the chunks into it.
"""

from __future__ import annotations

import time

import httpx

__all__ = ["CappedBody"]


class CappedBody:
    """Collects one reply body up to ``cap`` bytes.

    Feed the chunks while :meth:`feed` returns True; :attr:`body` is then the
    whole body, or None once it passed ``cap`` (the rest is not read). A chunk
    that arrives after ``deadline`` (a ``time.monotonic()`` value) raises
    ``httpx.ReadTimeout``.
    """

    __slots__ = ("_cap", "_chunks", "_deadline", "_over", "_size")

    def __init__(self, response: httpx.Response, cap: int, deadline: float | None) -> None:
        length = response.headers.get("content-length")
        self._over = length is not None and length.isdigit() and int(length) > cap
        self._cap = cap
        self._deadline = deadline
        self._chunks: list[bytes] = []
        self._size = 0

    @property
    def wants_more(self) -> bool:
        """False once the body is known to be over the cap."""
        return not self._over

    def feed(self, chunk: bytes) -> bool:
        """Take one chunk; False when reading should stop (over the cap)."""
        self._size += len(chunk)
        if self._size > self._cap:
            self._over = True
            self._chunks.clear()
            return False
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise httpx.ReadTimeout("response body took too long")
        self._chunks.append(chunk)
        return True

    @property
    def body(self) -> bytes | None:
        """The body read so far, or None if it passed the cap."""
        return None if self._over else b"".join(self._chunks)
