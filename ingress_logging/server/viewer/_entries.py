"""A session's entries as the session page asks for them: a window at a time.

The unfiltered view reads only the window it shows (a 50,000-entry session
opens as fast as a 50-entry one). A filter, or a permalink to an entry,
needs the whole session once. Every item says whether its ``parentUuid``
names the entry before it: the last earlier entry with a ``uuid`` on its
chain (the main chain, or the side chains, which interleave with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from ..._entry_filter import EntryFilter
from ._source import ViewerStore

__all__ = [
    "MAX_LIMIT",
    "Item",
    "Slice",
    "chain_heads",
    "chain_items",
    "heads_before",
    "parse_entry",
    "read_slice",
]

MAX_LIMIT: Final = 1000
_BACKSCAN: Final = 64


@dataclass(frozen=True, slots=True)
class Item:
    """One entry and its place: ``index`` in the session, ``chain_broken`` flag."""

    index: int
    entry: dict[str, Any]
    chain_broken: bool

    def as_json(self) -> dict[str, Any]:
        return {"i": self.index, "entry": self.entry, "chain_broken": self.chain_broken}


@dataclass(frozen=True, slots=True)
class Slice:
    """What one entries request answers.

    ``total`` counts the session's entries, ``matched`` those the filter
    keeps; ``offset`` is the position of ``items[0]`` among the matched.
    """

    total: int
    matched: int
    offset: int
    items: list[Item]

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "matched": self.matched,
            "offset": self.offset,
            "items": [item.as_json() for item in self.items],
        }


def parse_entry(text: str) -> dict[str, Any]:
    """A stored JSON text as a dict (anything else is shown as unreadable, not raised)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"type": "unreadable", "content": text}
    return value if isinstance(value, dict) else {"type": "unreadable", "content": text}


def _uuid(entry: dict[str, Any]) -> str | None:
    value = entry.get("uuid")
    return value if isinstance(value, str) else None


Heads = tuple[str | None, str | None]
"""The uuid of the last entry with one, on the main chain and on side chains."""


def _lane(entry: dict[str, Any]) -> int:
    return 1 if entry.get("isSidechain") is True else 0


def chain_items(entries: list[dict[str, Any]], start: int, heads: Heads) -> list[Item]:
    """Number entries from ``start`` and flag parentUuid mismatches.

    ``heads`` are the last uuids before ``start`` (main chain, side chains):
    side-chain entries (``isSidechain: true``) interleave with the main chain
    and chain among themselves. A null or missing ``parentUuid`` (a chain's
    root, a compaction boundary, a summary) is not a mismatch.
    """
    last = list(heads)
    items: list[Item] = []
    for offset, entry in enumerate(entries):
        lane = _lane(entry)
        parent = entry.get("parentUuid")
        broken = isinstance(parent, str) and parent != last[lane]
        items.append(Item(start + offset, entry, broken))
        last[lane] = _uuid(entry) or last[lane]
    return items


def chain_heads(items: list[Item], heads: Heads) -> Heads:
    """The chain heads after ``items``, given those before them."""
    last = list(heads)
    for item in items:
        last[_lane(item.entry)] = _uuid(item.entry) or last[_lane(item.entry)]
    return last[0], last[1]


def heads_before(store: ViewerStore, session_id: str, position: int) -> Heads:
    """The chain heads just before ``position`` (None where there is none)."""
    found: list[str | None] = [None, None]
    seen = [False, False]
    end = position
    while end > 0 and not all(seen):
        start = max(0, end - _BACKSCAN)
        texts = store.window(session_id, offset=start, limit=end - start) or []
        for text in reversed(texts):
            entry = parse_entry(text)
            lane = _lane(entry)
            uuid = _uuid(entry)
            if uuid is not None and not seen[lane]:
                found[lane], seen[lane] = uuid, True
        end = start
    return found[0], found[1]


def read_slice(
    store: ViewerStore,
    session_id: str,
    *,
    offset: int,
    limit: int,
    entry_filter: EntryFilter,
    around: str | None = None,
) -> Slice | None:
    """The window the page asked for; None for an unknown session.

    ``around`` (a permalink's uuid) moves ``offset`` to the page of
    ``limit`` entries holding that entry, when it is among the matched.
    """
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, offset)
    summary = store.session(session_id)
    if summary is None:
        return None
    total = summary.entries
    if not entry_filter.active and around is None:
        texts = store.window(session_id, offset=offset, limit=limit)
        if texts is None:
            return None
        heads = heads_before(store, session_id, offset)
        items = chain_items([parse_entry(t) for t in texts], offset, heads)
        return Slice(total, total, offset, items)
    texts = store.window(session_id, offset=0, limit=max(total, 1))
    if texts is None:
        return None
    everything = chain_items([parse_entry(t) for t in texts], 0, (None, None))
    kept = [item for item in everything if entry_filter.matches(item.entry)]
    if around is not None:
        for position, item in enumerate(kept):
            if _uuid(item.entry) == around:
                offset = position - position % limit
                break
    return Slice(len(everything), len(kept), offset, kept[offset : offset + limit])
