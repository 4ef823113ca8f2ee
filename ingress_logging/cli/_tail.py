"""One followed file: complete new lines, and what happened to the file.

A ``Tail`` reads from an open descriptor at its own position, so the file
it reads is the one it opened even after the path names another one. A
line counts only once its newline is written (a writer may be in the middle
of it); the partial rest waits. At the end of what is written it looks at
the path: a different file there (rotation: renamed and recreated) is
opened from its start once the old one is read to its end; a shorter file
(truncated) is read again from its start; no file (deleted) is let go.
"""

from __future__ import annotations

import collections
import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ._follow_state import FINGERPRINT_BYTES, FileState

__all__ = ["Change", "RawLine", "Tail"]

#: Bytes read per call: a backlog is taken in pieces, not into memory at once.
CHUNK: Final = 1 << 20
#: Bytes read past the confirmed offset while lines are pending.
AHEAD: Final = 4 << 20
_UTF8_BOM: Final = b"\xef\xbb\xbf"


class Change(enum.Enum):
    NONE = "none"
    ROTATED = "rotated"
    TRUNCATED = "truncated"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class RawLine:
    """One complete line: where it ends, its number, its entry (or why it is bad)."""

    end: int
    lineno: int
    entry: dict[str, Any] | None
    problem: str | None


def _parse(raw: bytes, lineno: int, end: int) -> RawLine | None:
    if lineno == 1 and raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    stripped = raw.strip()
    if not stripped:
        return None
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        return RawLine(end, lineno, None, f"not valid JSON ({exc})")
    if not isinstance(value, dict):
        return RawLine(end, lineno, None, f"a JSON {type(value).__name__}, not an object")
    return RawLine(end, lineno, value, None)


class Tail:
    """Complete lines of one file, from ``state.offset`` on."""

    def __init__(self, path: str, fd: int, state: FileState) -> None:
        self.path = path
        self.state = state
        self.pending: collections.deque[RawLine] = collections.deque()
        self._fd = fd
        self._pos = state.offset
        self._lineno = state.line
        self._partial = b""
        #: True when the last poll found nothing new to read.
        self.exhausted = False
        self.mtime = os.fstat(fd).st_mtime

    @classmethod
    def open(cls, path: str, state_for: Callable[[int, int, int], FileState]) -> Tail | None:
        """Open ``path``; ``state_for(dev, ino, fd)`` gives its state. None if it is gone."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        st = os.fstat(fd)
        state: FileState = state_for(st.st_dev, st.st_ino, fd)
        if st.st_size < state.offset:  # truncated while nobody followed it
            state.offset = state.line = 0
            state.fingerprint, state.fingerprint_len = None, 0
        return cls(path, fd, state)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _read(self) -> bool:
        data = os.pread(self._fd, CHUNK, self._pos)
        if not data:
            return False
        start = self._pos
        self._pos += len(data)
        buffer = self._partial + data
        start -= len(self._partial)
        lines = buffer.split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            start += len(raw) + 1
            self._lineno += 1
            line = _parse(raw, self._lineno, start)
            if line is None:
                self.state.offset, self.state.line = start, self._lineno  # blank: nothing to ship
                if not self.pending:
                    continue
                # after a pending line: its own skip is confirmed with the next one
                self.pending.append(RawLine(start, self._lineno, None, None))
                continue
            self.pending.append(line)
        return True

    def _final_partial(self) -> None:
        """The file will grow no more: an unterminated last line still counts."""
        if self._partial.strip():
            self._lineno += 1
            line = _parse(self._partial, self._lineno, self._pos)
            if line is not None:
                self.pending.append(line)
        self._partial = b""

    def poll(self) -> Change:
        """Read what is new; report what happened to the file.

        With lines still pending it reads on only up to ``AHEAD`` bytes past
        what is confirmed (a line may wait for a later one that names its
        session), so a backlog is never all in memory.
        """
        if self.pending and self._pos - self.state.offset >= AHEAD:
            return Change.NONE
        self.exhausted = False
        if self._read():
            return Change.NONE
        self.exhausted = True
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._final_partial()
            return Change.GONE
        if (st.st_dev, st.st_ino) != (self.state.dev, self.state.ino):
            self._final_partial()
            return Change.ROTATED
        if st.st_size < self._pos:
            # What was not shipped yet is gone with the old content.
            self._pos = self._lineno = 0
            self._partial = b""
            self.pending.clear()
            self.state.offset = self.state.line = 0
            self.state.fingerprint, self.state.fingerprint_len = None, 0
            return Change.TRUNCATED
        return Change.NONE

    def confirm(self, line: RawLine) -> None:
        """``line`` is stored (or was bad, or blank): the state may move past it."""
        self.pending.popleft()
        self.state.offset, self.state.line = line.end, line.lineno
        if self.state.fingerprint_len < FINGERPRINT_BYTES:
            self.state.note_start(self._fd)
        while self.pending and self.pending[0].entry is None and self.pending[0].problem is None:
            blank = self.pending.popleft()
            self.state.offset, self.state.line = blank.end, blank.lineno
