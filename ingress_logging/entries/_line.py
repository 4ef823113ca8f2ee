"""One entry as one JSONL line: what ``export``/``show`` print and the viewer's download serves."""

from __future__ import annotations

from typing import Any, Final

import orjson

__all__ = ["dump_line"]

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
