"""What the follower tells: counts per file and session, failures and their backoff.

One owner of these numbers (the follower's loop calls in); it decides when
a session may be tried again after a failure (a pause doubling from
``BACKOFF_FIRST`` to ``BACKOFF_MAX``) and what the status line says.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Final

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "Health"]

BACKOFF_FIRST: Final = 0.1
BACKOFF_MAX: Final = 5.0


class Health:
    """Counts, the last error, and each failing session's next try."""

    def __init__(self, status_every: float) -> None:
        self.shipped: Counter[str] = Counter()  # per file
        self.skipped = 0
        self.bad = 0
        self.dropped = 0
        self.sessions: dict[str, Counter[str]] = {}
        self.last_error: str | None = None
        self._failures: Counter[str] = Counter()
        self._retry_at: dict[str, float] = {}
        self._status_every = status_every
        self.status_at = time.monotonic() + status_every
        self._status_seen = 0

    def sent(self, path: str, session_id: str) -> None:
        self.shipped[path] += 1
        self.sessions.setdefault(session_id, Counter())["sent"] += 1

    def already_stored(self, session_id: str) -> None:
        self.skipped += 1
        self.sessions.setdefault(session_id, Counter())["skipped"] += 1

    def failed(self, session_id: str, text: str) -> bool:
        """Count a failure and set the session's next try; True if worth a line."""
        self._failures[session_id] += 1
        n = self._failures[session_id]
        self._retry_at[session_id] = time.monotonic() + min(
            BACKOFF_FIRST * 2 ** (n - 1), BACKOFF_MAX
        )
        new = text != self.last_error or n == 1
        self.last_error = text
        return new

    def recovered(self, session_id: str) -> bool:
        """The session delivers again; True if it had been failing."""
        self._retry_at.pop(session_id, None)
        return bool(self._failures.pop(session_id, 0))

    def waiting(self, session_id: str) -> bool:
        """True while the session pauses after a failure."""
        return time.monotonic() < self._retry_at.get(session_id, 0.0)

    def next_wake(self) -> float:
        """When the loop must look again at the latest: a retry or a status line."""
        return min([self.status_at, *self._retry_at.values()])

    def status(self, now: float, files: int) -> str | None:
        """The status line when one is due and there is something to say."""
        if now < self.status_at:
            return None
        self.status_at = now + self._status_every
        total = sum(self.shipped.values())
        if total == self._status_seen and not self._failures:
            return None  # idle and healthy: nothing to say
        self._status_seen = total
        text = f"follow: {total} lines shipped from {files} files"
        busiest = ", ".join(f"{Path(p).name} {n}" for p, n in self.shipped.most_common(5))
        if busiest:
            text += f" ({busiest})"
        if self.last_error is not None:
            text += f"; last error: {self.last_error}"
            if not self._failures:
                text += " (recovered)"
        return text

    def summary(self, state_file: Path) -> tuple[str, list[str]]:
        """(the closing line for stderr, one line per session for stdout)."""
        total = sum(self.shipped.values())
        closing = (
            f"stopped: {total} lines shipped, {self.skipped} already stored, "
            f"{self.bad} bad lines; state saved to {state_file}"
        )
        return closing, [
            f"session {sid}: {c['sent']} sent, {c['skipped']} skipped"
            for sid, c in self.sessions.items()
        ]
