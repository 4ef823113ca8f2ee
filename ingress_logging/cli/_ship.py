"""``ingress-logging ship FILE...``: append JSONL transcripts to sessions, resumably.

Why it reads before it writes: a transcript upload that was interrupted (a
laptop closed, a killed job) must be finishable by running the same command
again. So for each target session ``ship`` first reads what the session holds
(which also primes the client's chain head), then skips every entry already
there - by ``uuid``, or, for entries that carry none (summaries, snapshots),
by identical content, counted: the n-th identical line of a run is skipped
only when the session held at least n of them before it - and appends the
rest in file order with the blocking client, one entry at a time, so each
entry gets its own outcome.

A server that cannot be reached stops the run at the first failure, with one
line naming the address and the reason: every later line would fail the
same way.

Entries are sent exactly as read: their ``uuid``, ``parentUuid`` and
``sessionId`` are never rewritten, even when ``--session`` sends them to a
different session than the one they name.
"""

from __future__ import annotations

import collections
import copy
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._session_id import validate_session_id
from ..errors import InvalidSessionIdError
from ._config import CliConfig, LastEvent, pass_config
from ._follow import Follower, FollowOptions
from ._follow_state import ENV_STATE_FILE, default_state_path
from ._jsonl import BadLine, Line, read_jsonl
from ._once import append_once, has_uuid
from ._present import Present, content_key
from ._progress import Reporter, make_progress
from ._reach import unreachable
from ._stop import StopRequest

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
    #: Per target session, in the order first met: outcome -> count.
    sessions: dict[str, collections.Counter[str]] = field(default_factory=dict)

    def count(self, session_id: str, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.sessions.setdefault(session_id, collections.Counter())[outcome] += 1

    def summary(self) -> str:
        text = (
            f"{self.sent} sent, {self.skipped} skipped (already in the session), "
            f"{self.failed} failed, {self.bad} bad lines"
        )
        if self.dropped:
            text += f", {self.dropped} dropped by plugins"
        return text

    def per_session(self) -> list[str]:
        """One line per session: what was written to it (and what was not)."""
        lines = []
        for sid, c in self.sessions.items():
            text = f"session {sid}: {c['sent']} sent, {c['skipped']} skipped"
            if c["failed"]:
                text += f", {c['failed']} failed"
            if c["dropped"]:
                text += f", {c['dropped']} dropped by plugins"
            lines.append(text)
        return lines


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


def _read_sessions(
    client: SessionIngressClient, config: CliConfig, sessions: Sequence[str]
) -> dict[str, Present | None]:
    present: dict[str, Present | None] = {}
    for sid in sessions:
        url = config.session_url(sid)
        logs = client.get_session_logs(sid, url)
        if logs is None:
            down = unreachable(url, config.timeout)
            if down is not None:
                raise click.ClickException(f"{down}; nothing was sent")
        present[sid] = None if logs is None else Present(logs)
    return present


def _append(
    client: SessionIngressClient,
    config: CliConfig,
    session_id: str,
    entry: dict[str, Any],
    url: str,
    held: Present,
) -> bool:
    """Append one entry; True once it is stored.

    With a uuid, the client retries (it recognises an earlier attempt's
    entry by its uuid). Without one, each attempt is single (see ``_once``)
    and a failed one is followed by a read: one more copy of the content
    than the session held means the reply was lost, not the entry.
    """
    if has_uuid(entry):
        return client.append_session_log(session_id, entry, url)
    key = content_key(entry)
    for attempt in range(1, config.max_attempts + 1):
        if append_once(client, session_id, entry, url):
            return True
        logs = client.get_session_logs(session_id, url)
        if logs is not None and Present(logs).copies[key] > held.copies[key]:
            return True
        if attempt < config.max_attempts:
            time.sleep(min(config.base_delay * 2 ** (attempt - 1), max(config.base_delay, 8.0)))
    return False


def _send(
    config: CliConfig,
    client: SessionIngressClient,
    sink: LastEvent,
    items: Sequence[_Planned],
    present: dict[str, Present | None],
    counts: ShipCounts,
    reporter: Reporter,
    jobs: int,
) -> str | None:
    """Append every planned entry not already present; count each outcome.

    Sessions are independent, so up to ``jobs`` of them are shipped at once
    (one thread each); within a session entries go strictly in file order.
    Returns why the run stopped early (the server cannot be reached), if it did.
    """
    host = config.host()
    urls = {sid: config.session_url(sid) for sid in present}
    lock = threading.Lock()
    stop = threading.Event()
    stopped: list[str] = []

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
        elif _append(client, config, item.session_id, entry, urls[item.session_id], held):
            outcome = "sent"
            held.sent(entry)
        else:
            down = unreachable(urls[item.session_id], config.timeout)
            if down is not None:
                with lock:
                    stopped.append(down)
                stop.set()
                sink.pop()
                return
            outcome, note = "failed", f"failed: {where}: {sink.pop()}"
        with lock:
            counts.count(item.session_id, outcome)
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
        return stopped[0] if stopped else None
    with ThreadPoolExecutor(min(jobs, len(groups)), thread_name_prefix="ingress-ship") as pool:
        futures = [pool.submit(run, group) for group in groups.values()]
        try:
            for future in futures:
                future.result()
        except BaseException:
            stop.set()  # the others finish their current entry, then stop
            raise
    return stopped[0] if stopped else None


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
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
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep running: ship each complete new line of the FILES (files, directories, "
    "quoted globs) as it is written; resumable through --state-file. Stop with Ctrl-C.",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=ENV_STATE_FILE,
    show_envvar=True,
    default=None,
    show_default="$XDG_STATE_HOME/ingress-logging/follow-state.json, "
    "~/.local/state/ingress-logging/follow-state.json without it",
    help="With --follow: where the offset confirmed stored of each file is kept.",
)
@click.option(
    "--pattern",
    default="*.jsonl",
    show_envvar=True,
    help="With --follow: the files taken from a directory (and its subdirectories).",
)
@click.option(
    "--poll",
    is_flag=True,
    show_envvar=True,
    help="With --follow: look for changes every 0.25 s instead of using file notifications.",
)
@click.option(
    "--status-every",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_envvar=True,
    metavar="SECONDS",
    help="With --follow: how often a status line (lines shipped, last error) is written "
    "while lines flow or deliveries fail.",
)
@pass_config
def ship(
    config: CliConfig,
    files: tuple[str, ...],
    session_id: str | None,
    jobs: int,
    progress: bool | None,
    follow: bool,
    state_file: Path | None,
    pattern: str,
    poll: bool,
    status_every: float,
) -> None:
    """Append JSONL transcript FILES (one JSON entry per line) to session-ingress.

    Safe to re-run: entries the session already holds (same uuid, or the same
    content for entries without one) are skipped, so an interrupted upload
    resumes where it stopped. Entries are sent unchanged (uuid, parentUuid and
    sessionId are kept). Bad lines are reported as FILE:LINE and skipped; the
    rest is still sent. A server that cannot be reached stops the run at the
    first failure. Exit status: 0 if every line was sent or skipped, 1 if any
    entry failed, any line was bad or the server could not be reached, 130 if
    interrupted.
    """
    if session_id is not None:
        try:
            validate_session_id(session_id)
        except InvalidSessionIdError as exc:
            raise click.BadParameter(str(exc), param_hint="--session") from None
    config.check()
    if follow:
        options = FollowOptions(
            paths=files,
            session=session_id,
            state_file=state_file or default_state_path(),
            pattern=pattern,
            notifications=not poll,
            status_every=status_every,
        )
        _follow(config, options)
        return
    for path in files:
        if path != "-" and not os.path.isfile(path):
            what = "is a directory" if os.path.isdir(path) else "does not exist"
            raise click.BadParameter(
                f"{path!r} {what} (directories and globs are for --follow)", param_hint="FILES"
            )
    plan = plan_files(files, session_id)
    counts = ShipCounts(bad=len(plan.bad))
    for bad in plan.bad:
        click.echo(f"bad line: {bad}", err=True)

    sink = LastEvent(config.debug)
    use_bar = progress if progress is not None else sys.stderr.isatty()
    interrupted = False
    stopped: str | None = None
    with config.client(diagnostics=sink) as client:
        present = _read_sessions(client, config, plan.sessions)
        per_file = collections.Counter(item.line.path for item in plan.items)
        reporter = make_progress(bar=use_bar, per_file=per_file)
        try:
            stopped = _send(config, client, sink, plan.items, present, counts, reporter, jobs)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            reporter.close(counts)
    click.echo(counts.summary())
    for line in counts.per_session():
        click.echo(line)
    if stopped is not None:
        left = len(plan.items) - counts.sent - counts.skipped - counts.failed - counts.dropped
        raise click.ClickException(
            f"{stopped}; {left} entries not sent: run the same command again to resume"
        )
    if interrupted:
        click.echo("interrupted: run the same command again to resume", err=True)
        raise click.exceptions.Exit(130)
    if counts.failed or counts.bad:
        raise click.exceptions.Exit(1)


def _follow(config: CliConfig, options: FollowOptions) -> None:
    """Run the follower until Ctrl-C (exit 130) or SIGTERM (exit 0); the state is saved.

    The handlers only record the stop (see ``_stop``): the follower stops
    between lines, and a second signal cannot cut the final save short.
    """
    if "-" in options.paths:
        raise click.BadParameter("--follow reads files, not standard input", param_hint="FILES")
    sink = LastEvent(config.debug)
    stop = StopRequest()

    def on_signal(signum: int, frame: object) -> None:
        stop.request(130 if signum == signal.SIGINT else 0)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with config.client(diagnostics=sink) as client:
            follower = Follower(
                config, client, sink, options, lambda text: click.echo(text, err=True), stop=stop
            )
            try:
                follower.run()
            finally:
                follower.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop.close()
    raise click.exceptions.Exit(stop.code or 0)
