"""JSONL transcripts in and out: one JSON object per line, exactly preserved.

Reading never stops at a bad line: each one becomes a ``BadLine`` (file, line
number, reason) and the rest of the file is still read. Values are parsed
with orjson and written back with orjson, so a transcript survives
``export`` -> ``ship`` -> ``export`` byte for byte (key order, numbers and
strings as they were parsed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

import orjson

__all__ = ["BadLine", "Line", "canonical", "dump_line", "dump_lines", "read_jsonl"]


@dataclass(frozen=True, slots=True)
class Line:
    """One parsed entry and where it came from."""

    path: str
    lineno: int
    entry: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a JSON object, with the reason in plain words."""

    path: str
    lineno: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.lineno}: {self.reason}"


_UTF8_BOM: Final = b"\xef\xbb\xbf"


def _parse(raw: bytes) -> dict[str, Any] | str:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, not an object"
    return value


def read_jsonl(path: str, stream: IO[bytes]) -> Iterator[Line | BadLine]:
    """Yield every non-blank line of ``stream`` as a ``Line`` or a ``BadLine``."""
    for lineno, raw in enumerate(stream, start=1):
        if lineno == 1 and raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM) :]  # editors on Windows write one; it is not content
        stripped = raw.strip()
        if not stripped:
            continue
        parsed = _parse(stripped)
        if isinstance(parsed, str):
            yield BadLine(path, lineno, parsed)
        else:
            yield Line(path, lineno, parsed)


def canonical(entry: dict[str, Any]) -> bytes:
    """A stable byte form of an entry, for recognising one already stored."""
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)


#: Characters JSON allows raw inside strings but that ``str.splitlines()``
#: (and other line readers) treat as line breaks: NEL, LINE and PARAGRAPH
#: SEPARATOR. In UTF-8 these byte sequences only ever encode those characters.
_LINE_BREAKERS: Final = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)


def dump_line(entry: dict[str, Any]) -> bytes:
    """One JSONL line (compact, key order kept, newline-terminated).

    Line-breaking characters inside strings are written as escapes, so one
    entry is one line for every reader; the JSON value is unchanged.
    """
    data = orjson.dumps(entry)
    for raw, escaped in _LINE_BREAKERS:
        if raw in data:
            data = data.replace(raw, escaped)
    return data + b"\n"


def dump_lines(entries: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """``dump_line`` for each entry."""
    for entry in entries:
        yield dump_line(entry)
