"""``tail --follow``: ask the server only for what is new.

Each poll reads ``?after=<uuid of the last entry seen>``. A server that does
not know ``after`` answers with the whole session, which still holds that
uuid: the reply is recognised and cut after it, and later polls are plain
full reads (the way ``tail --follow`` always read before).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Follower"]


def _uuid(entry: dict[str, Any]) -> str | None:
    value = entry.get("uuid")
    return value if isinstance(value, str) else None


class Follower:
    """What ``tail --follow`` has seen, and what to ask the server for next.

    ``after`` is the uuid of the last entry seen that has one (entries
    without a uuid - summaries, snapshots - cannot be named), and
    ``past_anchor`` how many entries came after it. A reply to ``?after=``
    that still holds the anchor comes from a server that ignored the
    parameter: it is cut after the anchor, and later reads are full reads.
    """

    def __init__(self, entries: list[dict[str, Any]], *, incremental: bool) -> None:
        self.incremental = incremental
        self.seen = 0
        self.anchor: str | None = None
        self.past_anchor = 0
        self._advance(entries)

    @property
    def after(self) -> str | None:
        return self.anchor if self.incremental else None

    def _advance(self, new: list[dict[str, Any]]) -> None:
        self.seen += len(new)
        for entry in new:
            uuid = _uuid(entry)
            if uuid is not None:
                self.anchor, self.past_anchor = uuid, 0
            else:
                self.past_anchor += 1

    def new(self, reply: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The entries of ``reply`` not seen yet (the read asked for ``self.after``)."""
        asked = self.after
        if asked is None:
            if len(reply) < self.seen:
                # The read got shorter (a compaction with --after-last-compact):
                # start over from what it returns now.
                self.seen = 0
            fresh = reply[self.seen :]
            self.seen = len(reply) - len(fresh)
        else:
            position = next((i for i, e in enumerate(reply) if _uuid(e) == asked), None)
            if position is not None:  # the server ignored ?after=: it sent everything
                self.incremental = False
                reply = reply[position + 1 :]
            fresh = reply[self.past_anchor :]
        self._advance(fresh)
        return fresh
