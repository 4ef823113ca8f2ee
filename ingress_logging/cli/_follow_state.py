"""The follower's registry: per followed file, what is confirmed stored.

One JSON file (like Filebeat's registry or Fluent Bit's offset DB), written
atomically (a temporary file, fsync, rename), so a kill -9 leaves either
the previous state or the new one. Per file it keeps the file's identity
(device and inode: a path that now names another file was rotated), the
byte offset up to which every line is stored (or was a bad line), the line
number there and the last ``uuid`` stored. Per target session it keeps the
last ``uuid`` this follower stored there and the content keys of the lines
without one stored after it: what a restart reads the session against. A
lock file next to it keeps a second follower off the same state.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import orjson

from ..errors import ConfigError

__all__ = [
    "ENV_STATE_FILE",
    "FINGERPRINT_BYTES",
    "FileState",
    "FollowState",
    "SessionHead",
    "default_state_path",
    "fingerprint",
]

ENV_STATE_FILE: Final = "INGRESS_LOGGING_SHIP_STATE_FILE"
_VERSION: Final = 1
#: Bytes at the start of a file whose hash tells it from another file that got
#: the same inode number (inodes are reused as soon as a file is deleted).
FINGERPRINT_BYTES: Final = 256
_MAX_RETIRED: Final = 100
#: Uuid-less lines remembered after a session's last uuid (beyond: by content only).
_MAX_SINCE: Final = 10_000


def default_state_path() -> Path:
    """``$XDG_STATE_HOME/ingress-logging/follow-state.json`` (``~/.local/state`` without it)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "ingress-logging" / "follow-state.json"


def fingerprint(fd: int, length: int) -> str:
    """Hash of the first ``length`` bytes of the open file ``fd``."""
    return hashlib.sha256(os.pread(fd, length, 0)).hexdigest()[:32]


@dataclass
class FileState:
    """What is confirmed for one file (see the module docstring)."""

    dev: int
    ino: int
    offset: int = 0
    line: int = 0
    last_uuid: str | None = None
    #: Session of the last line: where the next line without a sessionId goes.
    session: str | None = None
    #: Hash of the first ``fingerprint_len`` bytes (at most ``FINGERPRINT_BYTES``).
    fingerprint: str | None = None
    fingerprint_len: int = 0

    def is_file(self, fd: int) -> bool:
        """True when the open file ``fd`` starts as the file this state is of."""
        if self.fingerprint is None or self.fingerprint_len == 0:
            return True
        return fingerprint(fd, self.fingerprint_len) == self.fingerprint

    def note_start(self, fd: int) -> None:
        """Remember how the file starts, up to what is confirmed (it never changes)."""
        length = min(self.offset, FINGERPRINT_BYTES)
        if length > self.fingerprint_len:
            self.fingerprint, self.fingerprint_len = fingerprint(fd, length), length

    def to_json(self) -> dict[str, Any]:
        return {
            "dev": self.dev,
            "ino": self.ino,
            "offset": self.offset,
            "line": self.line,
            "last_uuid": self.last_uuid,
            "session": self.session,
            "fingerprint": self.fingerprint,
            "fingerprint_len": self.fingerprint_len,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileState:
        return cls(
            dev=int(data["dev"]),
            ino=int(data["ino"]),
            offset=int(data["offset"]),
            line=int(data.get("line", 0)),
            last_uuid=data.get("last_uuid"),
            session=data.get("session"),
            fingerprint=data.get("fingerprint"),
            fingerprint_len=int(data.get("fingerprint_len", 0)),
        )


@dataclass
class SessionHead:
    """Per session: the last uuid this follower stored there, and the content
    keys of the uuid-less lines it stored after it (in order)."""

    last_uuid: str | None = None
    since: list[str] = field(default_factory=list)

    def stored(self, uuid: str | None, key: str | None) -> None:
        if uuid:
            self.last_uuid, self.since = uuid, []
        elif key is not None:
            self.since.append(key)
            del self.since[:-_MAX_SINCE]

    def to_json(self) -> dict[str, Any]:
        return {"last_uuid": self.last_uuid, "since": self.since}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionHead:
        return cls(last_uuid=data.get("last_uuid"), since=[str(k) for k in data.get("since", [])])


class FollowState:
    """The registry: load, claim a file, save. One owner: the follower's loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, FileState] = {}
        #: Files replaced under their path (rotated), by identity: if the old
        #: file shows up under a new name, it is claimed with its offset.
        self.retired: list[FileState] = []
        self.sessions: dict[str, SessionHead] = {}
        self._lock: IO[bytes] | None = None

    def open(self) -> None:
        """Take the lock and read the registry (a missing one is empty)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.path.with_name(self.path.name + ".lock"), "ab")  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"cannot use the state file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise ConfigError(
                f"another 'ship --follow' is using the state file {self.path}; "
                "stop it or pass another --state-file"
            ) from None
        self._lock = lock
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            data = orjson.loads(raw)
            self.files = {p: FileState.from_json(f) for p, f in data["files"].items()}
            self.retired = [FileState.from_json(f) for f in data.get("retired", [])]
            self.sessions = {
                sid: SessionHead.from_json(h) for sid, h in data.get("sessions", {}).items()
            }
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
            aside = self.path.with_name(self.path.name + ".damaged")
            os.replace(self.path, aside)
            raise ConfigError(
                f"the state file {self.path} is damaged (moved to {aside}); "
                "run again to start over (entries already stored are skipped)"
            ) from None

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def claim(self, path: str, dev: int, ino: int, fd: int, known: set[str]) -> FileState:
        """The state of the file now at ``path`` (open as ``fd``): its own, or that
        of the same file under an old name (renamed by rotation), or a fresh one.

        The same device and inode is the same file only if it also starts with
        the same bytes: a deleted file's inode number is soon given to a new one.
        """
        own = self.files.get(path)
        if own is not None and (own.dev, own.ino) == (dev, ino) and own.is_file(fd):
            return own
        for i, state in enumerate(self.retired):
            if (state.dev, state.ino) == (dev, ino) and state.is_file(fd):
                del self.retired[i]
                self.files[path] = state
                return state
        for old_path, state in list(self.files.items()):
            if old_path in known or (state.dev, state.ino) != (dev, ino):
                continue
            with contextlib.suppress(OSError):
                st = os.stat(old_path)
                if (st.st_dev, st.st_ino) == (dev, ino):
                    continue  # a hard link: both names are the same followed file
            if not state.is_file(fd):
                continue
            del self.files[old_path]
            self.files[path] = state
            return state
        fresh = FileState(dev=dev, ino=ino)
        if own is not None:
            # Replaced while nobody followed it: the old file may show up under
            # a new name; its lines without a sessionId went to this session.
            fresh.session = own.session
            if (own.dev, own.ino) != (dev, ino):
                self.retired = [*self.retired, own][-_MAX_RETIRED:]
        self.files[path] = fresh
        return fresh

    def forget(self, path: str) -> None:
        self.files.pop(path, None)

    def retire(self, path: str) -> None:
        """The file at ``path`` was replaced: keep its state by identity only."""
        state = self.files.pop(path, None)
        if state is not None:
            self.retired = [*self.retired, state][-_MAX_RETIRED:]

    def save(self) -> None:
        """Write the registry atomically (temporary file, fsync, rename).

        Only while this process holds the lock: a follower that could not
        take it must not overwrite the one that did.
        """
        if self._lock is None:
            return
        data = orjson.dumps(
            {
                "version": _VERSION,
                "files": {p: f.to_json() for p, f in self.files.items()},
                "retired": [f.to_json() for f in self.retired],
                "sessions": {sid: h.to_json() for sid, h in self.sessions.items()},
            }
        )
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
