"""The append rule, decided for a batch of appends in one transaction (group commit).

Both engines read, inside the transaction and under its locks, the state of
every session the batch touches (does it exist, its head) and which of the
batch's uuids those sessions already hold; :func:`plan_batch` then applies
the rule to each append in order, as if each were its own transaction: a 409
for one leaves the others untouched, and an append sees the head that the
earlier appends of the batch left. The engine writes what the plan accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .base import AppendRequest, AppendResult

__all__ = ["BatchPlan", "SessionChange", "plan_batch"]


@dataclass(slots=True)
class SessionChange:
    """What the accepted appends do to one session: its new head, how many
    entries they add, and whether the batch creates the session."""

    head: str | None
    created: bool
    added: int = 0


@dataclass(slots=True)
class BatchPlan:
    """``results`` in request order; ``accepted`` indexes the requests to
    store, in order; ``changes`` the sessions they move."""

    results: list[AppendResult] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    changes: dict[str, SessionChange] = field(default_factory=dict)


def plan_batch(
    requests: Sequence[AppendRequest],
    heads: Mapping[str, str | None],
    stored: set[tuple[str, str]],
) -> BatchPlan:
    """Decide each append in order.

    ``heads`` maps every existing session of the batch to its head (absent:
    the session does not exist); ``stored`` holds the ``(session, uuid)``
    pairs of the batch already in the database. An append to a session that
    does not exist creates it (201) unless it names a ``last_uuid`` (409, no
    head); an append to an existing one needs ``last_uuid`` equal to the
    head (200, else 409 naming the head); a uuid the session already holds
    is a 409 whatever the head. Entries without a uuid never become the head.
    """
    plan = BatchPlan()
    seen = set(stored)
    changes = plan.changes
    for index, request in enumerate(requests):
        sid, entry_uuid = request.session_id, request.uuid
        change = changes.get(sid)
        exists = change is not None or sid in heads
        head = change.head if change is not None else heads.get(sid)
        if entry_uuid is not None and (sid, entry_uuid) in seen:
            plan.results.append(AppendResult(409, head, stored=False))
            continue
        if not exists:
            if request.check and request.last_uuid is not None:
                plan.results.append(AppendResult(409, None, stored=False))
                continue
            change = changes[sid] = SessionChange(entry_uuid, created=True)
            status = 201
        else:
            if request.check and head != request.last_uuid:
                plan.results.append(AppendResult(409, head, stored=False))
                continue
            if change is None:
                change = changes[sid] = SessionChange(head, created=False)
            if entry_uuid is not None:
                change.head = entry_uuid
            status = 200
        change.added += 1
        if entry_uuid is not None:
            seen.add((sid, entry_uuid))
        plan.accepted.append(index)
        plan.results.append(AppendResult(status, change.head, stored=True))
    return plan
