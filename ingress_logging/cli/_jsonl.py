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
from typing import IO, Any

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


def dump_line(entry: dict[str, Any]) -> bytes:
    """One JSONL line (compact, key order kept, newline-terminated)."""
    return orjson.dumps(entry) + b"\n"


def dump_lines(entries: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """``dump_line`` for each entry."""
    for entry in entries:
        yield dump_line(entry)
