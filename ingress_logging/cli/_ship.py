"""``ingress-logging ship FILE...``: append JSONL transcripts to sessions, resumably.

Why it reads before it writes: a transcript upload that was interrupted (a
laptop closed, a killed job) must be finishable by running the same command
again. So for each target session ``ship`` first reads what the session holds
(which also primes the client's chain head), then skips every entry already
there - by ``uuid``, or, for entries that carry none (summaries, snapshots),
by identical content - and appends the rest in file order with the blocking
client, one entry at a time, so each entry gets its own outcome.

Entries are sent exactly as read: their ``uuid``, ``parentUuid`` and
``sessionId`` are never rewritten, even when ``--session`` sends them to a
different session than the one they name.
"""

from __future__ import annotations

import collections
import copy
import sys
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from .._session_id import validate_session_id
from ..errors import InvalidSessionIdError
from ._config import CliConfig, LastEvent, pass_config
from ._jsonl import BadLine, Line, canonical, read_jsonl
from ._progress import Reporter, make_progress

if TYPE_CHECKING:
    from ..client import SessionIngressClient

__all__ = ["ShipCounts", "plan_files", "ship"]


@dataclass
class ShipCounts:
    """What happened to every line: the summary ``ship`` prints."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    bad: int = 0
    dropped: int = 0

    def summary(self) -> str:
        text = (
            f"{self.sent} sent, {self.skipped} skipped (already in the session), "
            f"{self.failed} failed, {self.bad} bad lines"
        )
        if self.dropped:
            text += f", {self.dropped} dropped by plugins"
        return text


@dataclass
class _Planned:
    session_id: str
    line: Line


@dataclass
class _Plan:
    items: list[_Planned] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)


def _session_of(entry: dict[str, Any]) -> str | None:
    sid = entry.get("sessionId")
    return sid if isinstance(sid, str) and sid else None


def plan_files(paths: Sequence[str], session_override: str | None) -> _Plan:
    """Parse every file and decide each entry's session; bad lines are collected.

    Without ``--session`` an entry goes to its own ``sessionId``; an entry
    without one (a summary, a snapshot) goes to the session of the entry
    before it in the same file, or, at the top of a file, of the first
    entry after it that names one.
    """
    plan = _Plan()
    seen: set[str] = set()
    for path in paths:
        with click.open_file(path, "rb") as stream:
            parsed = list(read_jsonl(path, stream))
        lines = [p for p in parsed if isinstance(p, Line)]
        plan.bad.extend(p for p in parsed if isinstance(p, BadLine))
        current = next((s for s in map(_session_of, (ln.entry for ln in lines)) if s), None)
        for line in lines:
            own = _session_of(line.entry)
            if own is not None:
                current = own
            target = session_override or own or current
            if target is None:
                plan.bad.append(
                    BadLine(path, line.lineno, "no sessionId in this file; pass --session")
                )
                continue
            if session_override is None:
                try:
                    validate_session_id(target)
                except InvalidSessionIdError as exc:
                    plan.bad.append(BadLine(path, line.lineno, str(exc)))
                    continue
            if target not in seen:
                seen.add(target)
                plan.sessions.append(target)
            plan.items.append(_Planned(target, line))
    plan.bad.sort(key=lambda b: (paths.index(b.path), b.lineno))
    return plan


class _Present:
    """What a session already holds: uuids, plus content of uuid-less entries."""

    def __init__(self, loglines: Iterable[dict[str, Any]]) -> None:
        self.uuids: set[str] = set()
        self.others: collections.Counter[bytes] = collections.Counter()
        for entry in loglines:
            self.add(entry)

    def add(self, entry: dict[str, Any]) -> None:
        uuid = entry.get("uuid")
        if isinstance(uuid, str) and uuid:
            self.uuids.add(uuid)
        else:
            self.others[canonical(entry)] += 1

    def take(self, entry: dict[str, Any]) -> bool:
        """True if the entry is already stored (and account for it)."""
        uuid = entry.get("uuid")
        if isinstance(uuid, str) and uuid:
            return uuid in self.uuids
        key = canonical(entry)
        if self.others[key] > 0:
            self.others[key] -= 1
            return True
        return False


def _read_sessions(
    client: SessionIngressClient, config: CliConfig, sessions: Sequence[str]
) -> dict[str, _Present | None]:
    present: dict[str, _Present | None] = {}
    for sid in sessions:
        logs = client.get_session_logs(sid, config.session_url(sid))
        present[sid] = None if logs is None else _Present(logs)
    return present


def _send(
    config: CliConfig,
    client: SessionIngressClient,
    sink: LastEvent,
    items: Sequence[_Planned],
    present: dict[str, _Present | None],
    counts: ShipCounts,
    reporter: Reporter,
    jobs: int,
) -> None:
    """Append every planned entry not already present; count each outcome.

    Sessions are independent, so up to ``jobs`` of them are shipped at once
    (one thread each); within a session entries go strictly in file order.
    """
    host = config.host()
    urls = {sid: config.session_url(sid) for sid in present}
    lock = threading.Lock()
    stop = threading.Event()

    def one(item: _Planned) -> None:
        held = present[item.session_id]
        where = f"{item.line.path}:{item.line.lineno}"
        note = None
        # Redaction plugins apply to uploads too; comparing the prepared form
        # keeps resume exact when they change entries.
        entry = host.prepare_entry(copy.deepcopy(item.line.entry), None)
        if entry is None:
            outcome = "dropped"
        elif held is None:
            outcome, note = "failed", f"failed: {where}: could not read session {item.session_id}"
        elif held.take(entry):
            outcome = "skipped"
        elif client.append_session_log(item.session_id, entry, urls[item.session_id]):
            outcome = "sent"
            held.add(entry)
        else:
            outcome, note = "failed", f"failed: {where}: {sink.pop()}"
        with lock:
            setattr(counts, outcome, getattr(counts, outcome) + 1)
            if note is not None:
                reporter.note(note)
            reporter.advance(item.line.path, counts)

    def run(group: Sequence[_Planned]) -> None:
        for item in group:
            if stop.is_set():
                return
            one(item)

    groups: dict[str, list[_Planned]] = {}
    for item in items:
        groups.setdefault(item.session_id, []).append(item)
    if jobs == 1 or len(groups) <= 1:
        run(items)
        return
    with ThreadPoolExecutor(min(jobs, len(groups)), thread_name_prefix="ingress-ship") as pool:
        futures = [pool.submit(run, group) for group in groups.values()]
        try:
            for future in futures:
                future.result()
        except BaseException:
            stop.set()  # the others finish their current entry, then stop
            raise


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option(
    "--session",
    "session_id",
    metavar="SESSION",
    envvar="INGRESS_LOGGING_SHIP_SESSION",
    show_envvar=True,
    help="Append everything to this session (default: each entry's own sessionId).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=4,
    show_envvar=True,
    help="Sessions shipped at once (entries of one session always go in order).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    show_envvar=True,
    show_default="a bar on a terminal, plain lines otherwise",
    help="Force the progress bar on or off.",
)
@pass_config
def ship(
    config: CliConfig,
    files: tuple[str, ...],
    session_id: str | None,
    jobs: int,
    progress: bool | None,
) -> None:
    """Append JSONL transcript FILES (one JSON entry per line) to session-ingress.

    Safe to re-run: entries the session already holds (same uuid, or the same
    content for entries without one) are skipped, so an interrupted upload
    resumes where it stopped. Entries are sent unchanged (uuid, parentUuid and
    sessionId are kept). Bad lines are reported as FILE:LINE and skipped; the
    rest is still sent. Exit status: 0 if every line was sent or skipped, 1 if
    any entry failed or any line was bad, 130 if interrupted.
    """
    if session_id is not None:
        try:
            validate_session_id(session_id)
        except InvalidSessionIdError as exc:
            raise click.BadParameter(str(exc), param_hint="--session") from None
    config.check()
    plan = plan_files(files, session_id)
    counts = ShipCounts(bad=len(plan.bad))
    for bad in plan.bad:
        click.echo(f"bad line: {bad}", err=True)

    sink = LastEvent(config.debug)
    use_bar = progress if progress is not None else sys.stderr.isatty()
    interrupted = False
    with config.client(diagnostics=sink) as client:
        present = _read_sessions(client, config, plan.sessions)
        per_file = collections.Counter(item.line.path for item in plan.items)
        reporter = make_progress(bar=use_bar, per_file=per_file)
        try:
            _send(config, client, sink, plan.items, present, counts, reporter, jobs)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            reporter.close(counts)
    click.echo(counts.summary())
    if interrupted:
        click.echo("interrupted: run the same command again to resume", err=True)
        raise click.exceptions.Exit(130)
    if counts.failed or counts.bad:
        raise click.exceptions.Exit(1)
