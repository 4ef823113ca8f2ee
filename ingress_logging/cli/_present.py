"""What a session already holds, to recognise an entry that is stored already.

By ``uuid``; an entry without one (a summary, a snapshot) by its content,
counted: each stored copy matches one line, so two identical lines need two
stored copies to both count as stored.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Iterable
from typing import Any

from ._jsonl import canonical

__all__ = ["Present", "content_key"]


def content_key(entry: dict[str, Any]) -> str:
    """A short stable key of an entry's content (what the follower's state keeps)."""
    return hashlib.sha256(canonical(entry)).hexdigest()[:32]


class Present:
    """What a session already holds: uuids, plus content of uuid-less entries."""

    def __init__(self, loglines: Iterable[dict[str, Any]]) -> None:
        self.uuids: set[str] = set()
        self.others: collections.Counter[str] = collections.Counter()
        for entry in loglines:
            self.add(entry)
        #: Copies of each uuid-less content the session holds, as far as known:
        #: those read, plus those stored since (``sent``).
        self.copies: collections.Counter[str] = collections.Counter(self.others)

    def add(self, entry: dict[str, Any]) -> None:
        uuid = entry.get("uuid")
        if isinstance(uuid, str) and uuid:
            self.uuids.add(uuid)
        else:
            self.others[content_key(entry)] += 1

    def sent(self, entry: dict[str, Any]) -> None:
        """Account for an entry this run stored.

        Only its uuid: a second identical uuid-less line is a second entry
        (two equal summaries are two lines of the transcript), and must not
        match the copy this run just stored.
        """
        uuid = entry.get("uuid")
        if isinstance(uuid, str) and uuid:
            self.uuids.add(uuid)
        else:
            self.copies[content_key(entry)] += 1

    def take(self, entry: dict[str, Any]) -> bool:
        """True if the entry is already stored (and account for it)."""
        uuid = entry.get("uuid")
        if isinstance(uuid, str) and uuid:
            return uuid in self.uuids
        return self.discount(content_key(entry))

    def discount(self, key: str) -> bool:
        """One stored copy of this content is accounted for; False if none is left."""
        if self.others[key] > 0:
            self.others[key] -= 1
            return True
        return False
