"""``ship --follow``: ship each complete new line of transcript files as it is written.

One loop owns everything (the files, the registry, the counts): it sleeps
until the watcher says a file may have changed (or an interval passes),
reads the complete new lines of every followed file, and appends them in
file order with the blocking client. After each line is stored the file's
offset moves past it; the registry is saved at most every
``SAVE_INTERVAL`` seconds and at a stop.

A stop (Ctrl-C, SIGTERM) is only recorded by the signal handler (see
``_stop``); the loop looks at it between lines, so it stops with every line
either stored and confirmed or not sent, never in the middle of one. A
request in flight is finished (at most ``--timeout``); the pause before a
retry is cut short.

Exactly once across restarts and failures: the registry may be behind what
is stored (a kill -9 between a store and a save, a lost reply). So after a
start, and after a failure, the first line for a session is preceded by a
read of it: the entries stored after the last one the registry confirms for
that session (less the uuid-less lines it confirmed after that one) may be
lines of ours, stored but not confirmed. Each file's next lines found among
them are skipped, up to the first that is not (what a file stored is a
prefix of what it had to send). Lines without a uuid are recognised by
content, as in ``ship``; a session the registry has never written to is
read whole, as ``ship`` reads it.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from .._session_id import validate_session_id
from ..errors import IngressLoggingError, InvalidSessionIdError
from ..protocol import Done, Wait
from ._config import CliConfig, LastEvent
from ._follow_health import Health
from ._follow_paths import expand, watch_dirs
from ._follow_state import FileState, FollowState, SessionHead
from ._once import append_once, has_uuid
from ._present import Present, content_key
from ._reach import unreachable
from ._stop import StopRequest
from ._tail import Change, RawLine, Tail
from ._watch import RESCAN_INTERVAL, Waker

if TYPE_CHECKING:
    from ..client import SessionIngressClient
    from ..plugins import PluginHost

__all__ = ["FollowOptions", "Follower"]

SAVE_INTERVAL: Final = 0.2
STATUS_INTERVAL: Final = 5.0
#: Lines one file ships before the loop turns to the next file.
TURN: Final = 200


@dataclass
class FollowOptions:
    paths: Sequence[str]
    session: str | None
    state_file: Path
    pattern: str = "*.jsonl"
    notifications: bool = True
    status_every: float = STATUS_INTERVAL


class Follower:
    """Follow the files named by ``options.paths`` until stopped (see the module docstring)."""

    def __init__(
        self,
        config: CliConfig,
        client: SessionIngressClient,
        sink: LastEvent,
        options: FollowOptions,
        echo: Callable[[str], None],
        *,
        stop: StopRequest,
    ) -> None:
        self._config = config
        self._stop = stop
        self._client = client
        self._sink = sink
        self._options = options
        self._echo = echo
        self._host: PluginHost = config.host()
        self._state = FollowState(options.state_file)
        self._tails: dict[str, Tail] = {}
        self._ending: dict[str, Change] = {}
        #: session -> what it holds that may be lines of ours stored but not confirmed.
        self._unconfirmed: dict[str, Present] = {}
        #: (file, session) pairs past that check: their next line is sent as is.
        self._checked: set[tuple[str, str]] = set()
        self._waiting_noted: set[str] = set()
        self._urls: dict[str, str] = {}
        self.health = Health(options.status_every)
        self._dirty = False
        self._saved_at = 0.0
        self._waker: Waker | None = None
        self._started = False
        self._scanned = False

    # -- the loop --------------------------------------------------------------

    def run(self) -> None:
        """Follow until ``stop`` is requested (the caller calls :meth:`close`)."""
        self._state.open()
        self._started = True
        recursive, flat = watch_dirs(self._options.paths)
        self._waker = Waker(
            recursive, flat, notifications=self._options.notifications, stop=self._stop
        )
        self._discover()
        how = "file notifications" if self._waker.mode == "notifications" else "polling"
        if self._waker.problem:
            how += f" ({self._waker.problem})"
        self._echo(
            f"follow: {len(self._tails)} files, watching with {how}; "
            f"state in {self._options.state_file}"
        )
        next_scan = time.monotonic() + RESCAN_INTERVAL
        while not self._stop.requested():
            self._pump()
            self._save(force=False)
            now = time.monotonic()
            status = self.health.status(now, len(self._tails))
            if status is not None:
                self._echo(status)
            wake = min(next_scan, self.health.next_wake())
            if self._dirty:  # a save put off by SAVE_INTERVAL is due then
                wake = min(wake, self._saved_at + SAVE_INTERVAL)
            self._waker.wait(wake - now)
            if self._stop.requested():
                return
            self._discover()
            if time.monotonic() >= next_scan:
                next_scan = time.monotonic() + RESCAN_INTERVAL

    def close(self) -> None:
        """Save the registry, release everything, print what was shipped where."""
        try:
            self._save(force=True)
        finally:
            if self._waker is not None:
                self._waker.close()
            for tail in self._tails.values():
                tail.close()
            self._state.close()
        if not self._started:
            return
        closing, per_session = self.health.summary(self._options.state_file)
        self._echo(closing)
        for text in per_session:
            click.echo(text)

    # -- files -------------------------------------------------------------------

    def _discover(self) -> None:
        following = {(t.state.dev, t.state.ino) for t in self._tails.values()}
        known = set(self._tails)
        for path in expand(self._options.paths, self._options.pattern):
            if path in self._tails:
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in following:
                continue  # the same file under another name, already followed

            def state_for(dev: int, ino: int, fd: int, path: str = path) -> FileState:
                return self._state.claim(path, dev, ino, fd, known)

            tail = Tail.open(path, state_for)
            if tail is None:
                continue
            self._tails[path] = tail
            known.add(path)
            following.add((tail.state.dev, tail.state.ino))
            self._dirty = True
            if self._scanned:
                self._echo(f"follow: new file {path}")
        self._scanned = True

    def _end(self, path: str, change: Change) -> None:
        tail = self._tails.pop(path)
        tail.close()
        self._ending.pop(path, None)
        self._checked = {k for k in self._checked if k[0] != path}
        self._dirty = True
        if change is Change.GONE:
            # Kept by identity, not forgotten: a rotation renames the file
            # before its replacement exists, and the file that seemed gone
            # turns up under its new name, to go on from where it was.
            self._state.retire(path)
            self._echo(f"follow: {path} was removed; let go")
            return
        self._state.retire(path)
        self._echo(f"follow: {path} was replaced (rotated); reading the new file from its start")
        fresh = Tail.open(path, lambda dev, ino, fd: self._state.claim(path, dev, ino, fd, set()))
        if fresh is not None:
            self._tails[path] = fresh
            fresh.state.session = tail.state.session

    def _pump(self) -> None:
        """One pass over the files, oldest first: ship what is new.

        A file that stops with lines left (its turn is over, or its session
        waits to retry) holds back the later files' lines for the same
        session in this pass, so a session's lines keep the files' order (a
        rotated file before the one that replaced it).
        """
        held: set[str] = set()
        for path in sorted(self._tails, key=lambda p: self._tails[p].mtime):
            if self._stop.requested():
                return
            tail = self._tails[path]
            turn = TURN
            while turn > 0 and not self._stop.requested():
                change = tail.poll()
                if change is Change.TRUNCATED:
                    self._echo(f"follow: {path} was truncated; reading it from its start")
                    self._dirty = True
                elif change in (Change.ROTATED, Change.GONE):
                    self._ending[path] = change
                turn = self._ship_pending(tail, turn, held)
                if tail.pending:
                    head = self._target(tail, tail.pending[0])
                    if isinstance(head, str):
                        held.add(head)
                    break
                if tail.exhausted:
                    break
            ending = self._ending.get(path)
            if ending is not None and not tail.pending:
                self._end(path, ending)

    # -- lines ---------------------------------------------------------------------

    def _ship_pending(self, tail: Tail, turn: int, held: set[str]) -> int:
        """Ship up to ``turn`` pending lines; returns how much of the turn is left."""
        while tail.pending and turn and not self._stop.requested():
            line = tail.pending[0]
            if line.entry is None:
                if line.problem is not None:
                    self.health.bad += 1
                    self._echo(f"bad line: {tail.path}:{line.lineno}: {line.problem}")
                self._confirm(tail, line, None, None)
                continue
            target = self._target(tail, line)
            if isinstance(target, _Problem):
                self.health.bad += 1
                self._echo(f"bad line: {tail.path}:{line.lineno}: {target.reason}")
                self._confirm(tail, line, None, None)
                continue
            if target is None:
                if tail.path not in self._waiting_noted:
                    self._waiting_noted.add(tail.path)
                    self._echo(
                        f"follow: {tail.path}:{line.lineno}: no sessionId yet; "
                        "waiting for a line that names one (or pass --session)"
                    )
                return turn
            if target in held or self.health.waiting(target):
                return turn
            if not self._ship(tail, line, target):
                return turn
            turn -= 1
        return turn

    def _target(self, tail: Tail, line: RawLine) -> str | _Problem | None:
        if self._options.session is not None:
            return self._options.session
        if line.entry is None:
            return None
        for candidate in (line, *tail.pending):
            own = candidate.entry.get("sessionId") if candidate.entry is not None else None
            if isinstance(own, str) and own:
                try:
                    return validate_session_id(own)
                except InvalidSessionIdError as exc:
                    if candidate is line:
                        return _Problem(str(exc))
                    return None
            if candidate is line and tail.state.session is not None:
                return tail.state.session
        return None

    def _url(self, session_id: str) -> str:
        url = self._urls.get(session_id)
        if url is None:
            url = self._urls[session_id] = self._config.session_url(session_id)
        return url

    def _ship(self, tail: Tail, line: RawLine, session_id: str) -> bool:
        """Store one line (or find it stored); False when it must be tried again later."""
        assert line.entry is not None
        entry = self._host.prepare_entry(copy.deepcopy(line.entry), None)
        if entry is None:
            self.health.dropped += 1
            self._confirm(tail, line, session_id, None)
            return True
        key = (tail.path, session_id)
        if key not in self._checked:
            unconfirmed = self._unconfirmed.get(session_id)
            if unconfirmed is None:
                unconfirmed = self._read_unconfirmed(session_id)
                if unconfirmed is None:
                    return False
                self._unconfirmed[session_id] = unconfirmed
            if unconfirmed.take(entry):
                self.health.already_stored(session_id)
                self._confirm(tail, line, session_id, entry)
                return True
            self._checked.add(key)  # stored lines are a prefix: nothing later was stored
        if not self._append(session_id, entry):
            if self._stop.requested():
                return False  # cut short: the next start reads the session first
            # The reply may have been lost: read the session before the retry.
            self._checked = {k for k in self._checked if k[1] != session_id}
            self._unconfirmed.pop(session_id, None)
            self._failed(session_id, self._sink.pop())
            return False
        self.health.sent(tail.path, session_id)
        self._confirm(tail, line, session_id, entry)
        self._recovered(session_id)
        return True

    def _append(self, session_id: str, entry: dict[str, Any]) -> bool:
        """Store one entry; False when it may or may not be stored.

        Without a uuid: one attempt (see ``_once``); the loop reads the
        session before the next one.
        """
        url = self._url(session_id)
        if not has_uuid(entry):
            return append_once(self._client, session_id, entry, url)
        # append_session_log's loop, with the pause before a retry cut short
        # by a stop (the follower is the client's only user: no turns needed).
        pending = self._client.begin_append(session_id, entry, url)
        action = pending.action
        while not isinstance(action, Done):
            if isinstance(action, Wait):
                if self._stop.sleep(action.delay):
                    return False
                action = self._client.resume(pending)
            else:
                action = self._client.advance(pending)
        return action.ok

    def _read_unconfirmed(self, session_id: str) -> Present | None:
        """The session's entries after the last one the registry confirms."""
        try:
            logs = self._client.get_session_logs(session_id, self._url(session_id))
        except IngressLoggingError as exc:
            self._failed(session_id, str(exc))
            return None
        if logs is None:
            self._failed(session_id, self._sink.pop(f"could not read session {session_id}"))
            return None
        head = self._state.sessions.get(session_id)
        start = 0
        if head is not None and head.last_uuid is not None:
            for i in range(len(logs) - 1, -1, -1):
                if logs[i].get("uuid") == head.last_uuid:
                    start = i + 1
                    break
        present = Present(logs[start:])
        if head is not None:
            for content in head.since:
                present.discount(content)
        return present

    def _confirm(
        self, tail: Tail, line: RawLine, session_id: str | None, entry: dict[str, Any] | None
    ) -> None:
        tail.confirm(line)
        self._dirty = True
        state = tail.state
        if session_id is None:
            return
        state.session = session_id
        if entry is None:
            return
        uuid = entry.get("uuid")
        head = self._state.sessions.setdefault(session_id, SessionHead())
        if isinstance(uuid, str) and uuid:
            state.last_uuid = uuid
            head.stored(uuid, None)
        else:
            head.stored(None, content_key(entry))

    # -- health --------------------------------------------------------------------

    def _failed(self, session_id: str, reason: str) -> None:
        down = unreachable(self._url(session_id), self._config.timeout)
        text = down or f"session {session_id}: {reason}"
        if self.health.failed(session_id, text):
            self._echo(f"follow: {text}; retrying (lines wait, nothing is skipped)")

    def _recovered(self, session_id: str) -> None:
        if self.health.recovered(session_id):
            self._echo(f"follow: session {session_id}: delivering again")

    def _save(self, *, force: bool) -> None:
        now = time.monotonic()
        if self._dirty and (force or now - self._saved_at >= SAVE_INTERVAL):
            self._state.save()
            self._dirty = False
            self._saved_at = now


@dataclass(frozen=True)
class _Problem:
    reason: str
