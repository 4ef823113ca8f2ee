"""A stop asked for by a signal, safe to record from a Python signal handler.

A signal handler runs in the main thread between any two bytecodes: inside
the client's locks, inside ``threading.Condition.wait`` between its release
and its re-acquire, between moving a file's offset and recording its uuid.
Raising there (as ``KeyboardInterrupt`` does) can leave a lock released
twice or the follow state half updated. So the handler only records which
signal came first and writes one byte to a pipe - no lock, no allocation
that can block - and the follower stops at its next safe point. The pipe
is what wakes the follower's waits (``select`` on ``fileno()``); it is never
drained, so every wait after a stop returns at once.
"""

from __future__ import annotations

import contextlib
import os
import select

__all__ = ["StopRequest"]


class StopRequest:
    """Set once by :meth:`request`; read by the loop at its safe points."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        #: The exit status the first stop asked for; None until then.
        self.code: int | None = None

    def requested(self) -> bool:
        return self.code is not None

    def request(self, code: int) -> None:
        """Ask to stop with ``code`` (a later request keeps the first one's code)."""
        if self.code is None:
            self.code = code
        with contextlib.suppress(BlockingIOError):  # full of bytes: the stop is seen anyway
            os.write(self._write, b"\0")

    def fileno(self) -> int:
        """Readable once a stop was requested."""
        return self._read

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` or until a stop is requested; True if one was."""
        if not self.requested() and seconds > 0:
            select.select([self._read], [], [], seconds)
        return self.requested()

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)
