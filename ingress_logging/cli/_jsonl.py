"""JSONL transcripts in: one JSON object per line, exactly preserved.

Reading never stops at a bad line: each one becomes a ``BadLine`` (file, line
number, reason) and the rest of the file is still read. Values are parsed
with orjson and written back with orjson (``entries.dump_line``), so a
transcript survives ``export`` -> ``ship`` -> ``export`` byte for byte (key
order, numbers and strings as they were parsed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

import orjson

__all__ = ["BadLine", "Line", "canonical", "read_jsonl"]


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
