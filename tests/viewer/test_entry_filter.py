"""The one entry filter behind the CLI's --type/--level/--since/--grep and the viewer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from ingress_logging._entry_filter import EntryFilter, entry_level, parse_since

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - timedelta(seconds=90)),
        ("15m", NOW - timedelta(minutes=15)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("2d", NOW - timedelta(days=2)),
        ("1w", NOW - timedelta(weeks=1)),
        ("2026-01-02", datetime(2026, 1, 2, tzinfo=UTC)),
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05+02:00", datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)),
    ],
)
def test_since_reads_ages_and_iso_times(text, expected) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "5 parsecs", "m5", "2026-13-01"])
def test_since_refuses_anything_else(text) -> None:
    with pytest.raises(ValueError, match="neither an ISO date/time"):
        parse_since(text, now=NOW)


@pytest.mark.parametrize(
    ("entry", "level"),
    [
        ({"level": "warning"}, "warning"),
        ({"level": "WARN"}, "warning"),
        ({"severity": {"text": "ERROR2", "number": 18}}, "error"),
        ({"severity": {"text": "FATAL"}}, "critical"),
        ({"level": 40}, None),
        ({"severity": "loud"}, None),
        ({}, None),
    ],
)
def test_levels_fold_onto_five_names(entry, level) -> None:
    assert entry_level(entry) == level


def test_conditions_combine_and_odd_fields_never_raise() -> None:
    keep = EntryFilter(
        types=frozenset({"system/log"}),
        min_level="warning",
        since=datetime(2026, 1, 1, tzinfo=UTC),
        grep=re.compile("disk"),
    )
    good = {
        "type": "system",
        "subtype": "log",
        "level": "error",
        "timestamp": "2026-02-01T00:00:00.000Z",
        "content": "disk full",
    }
    assert keep.matches(good)
    assert not keep.matches({**good, "level": "info"})
    assert not keep.matches({**good, "subtype": "gap"})
    assert not keep.matches({**good, "timestamp": "2025-12-31T23:59:59Z"})
    assert not keep.matches({**good, "timestamp": None})
    assert not keep.matches({**good, "content": "fine"})
    assert keep.matches({**good, "content": None, "extra": {"path": ["/", "disk"]}})
    assert not EntryFilter().active
    assert EntryFilter().matches({"type": 7, "timestamp": [], "level": {}})
    with pytest.raises(ValueError, match="unknown level"):
        EntryFilter(min_level="loud")
