"""Which entries to show: by type, level, time and text.

One predicate for the two places that read sessions back to a person: the
CLI's ``show``/``tail`` (``--type``, ``--level``, ``--since``, ``--grep``) and
the server's web viewer (its filter bar). Entries are hostile, arbitrary
JSON: a missing or odd-typed field means "does not match", never an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = [
    "LEVELS",
    "EntryFilter",
    "entry_kind",
    "entry_level",
    "entry_strings",
    "parse_since",
]

#: Level names, lowest first. ``warn``/``fatal`` and OpenTelemetry's
#: severity texts (``WARN``, ``ERROR2``...) fold onto these.
LEVELS: Final = ("debug", "info", "warning", "error", "critical")
_RANK: Final = {name: rank for rank, name in enumerate(LEVELS)}
_ALIASES: Final = {"trace": "debug", "warn": "warning", "fatal": "critical", "notice": "info"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def entry_kind(entry: dict[str, Any]) -> str:
    """``type`` plus ``/subtype`` when present (e.g. ``system/compact_boundary``)."""
    kind = str(entry.get("type", "?"))
    subtype = entry.get("subtype")
    return f"{kind}/{subtype}" if isinstance(subtype, str) else kind


def _level_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    name = value.strip().lower().rstrip("0123456789")
    name = _ALIASES.get(name, name)
    return name if name in _RANK else None


def entry_level(entry: dict[str, Any]) -> str | None:
    """The entry's level as one of :data:`LEVELS`, or None when it has none.

    ``level`` (handler log entries, system notices, gap markers) or an
    OpenTelemetry log's ``severity.text``.
    """
    level = _level_name(entry.get("level"))
    if level is not None:
        return level
    severity = entry.get("severity")
    if isinstance(severity, dict):
        return _level_name(severity.get("text"))
    return None


def entry_strings(value: Any) -> Iterator[str]:
    """Every string value inside an entry (keys are not content)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from entry_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from entry_strings(item)


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``--since``: an ISO date/time (UTC unless it says otherwise) or an age.

    An age is a number and a unit, summed: ``90s``, ``15m``, ``2h``, ``1d``,
    ``1h30m``, ``1w``. Raises ValueError with a readable message otherwise.
    """
    stripped = text.strip()
    if stripped and _DURATION.sub("", stripped).strip() == "":
        seconds = sum(
            float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION.findall(stripped)
        )
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    moment = _parse_time(stripped)
    if moment is None:
        raise ValueError(
            f"{text!r} is neither an ISO date/time (2026-01-02T03:04:05Z) "
            "nor an age such as 90s, 15m, 2h, 1d"
        )
    return moment


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """A conjunction of conditions; an empty filter matches every entry.

    ``types``: the entry's ``type`` or ``type/subtype`` is one of them.
    ``min_level``: the entry has a level (:func:`entry_level`) at least this one.
    ``since``: the entry's ``timestamp`` is at or after this moment.
    ``grep``: the pattern is found in one of the entry's string values.
    """

    types: frozenset[str] = frozenset()
    min_level: str | None = None
    since: datetime | None = None
    grep: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        if self.min_level is not None and _level_name(self.min_level) is None:
            raise ValueError(f"unknown level {self.min_level!r}; one of {', '.join(LEVELS)}")

    @property
    def active(self) -> bool:
        return bool(self.types or self.min_level or self.since or self.grep)

    def matches(self, entry: dict[str, Any]) -> bool:
        if self.types:
            kind = entry.get("type")
            if kind not in self.types and entry_kind(entry) not in self.types:
                return False
        if self.min_level is not None:
            level = entry_level(entry)
            wanted = _level_name(self.min_level)
            if level is None or wanted is None or _RANK[level] < _RANK[wanted]:
                return False
        if self.since is not None:
            stamp = entry.get("timestamp")
            moment = _parse_time(stamp) if isinstance(stamp, str) else None
            if moment is None or moment < self.since:
                return False
        if self.grep is not None:
            pattern = self.grep
            if not any(pattern.search(text) for text in entry_strings(entry)):
                return False
        return True
