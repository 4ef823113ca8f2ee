"""The durable spool: entries survive a crash between ``submit()`` and the ack.

Opt-in (``spool_dir=...``). Every entry the engine accepts is committed to one
SQLite table in ``spool_dir`` *before* ``submit()`` returns - finished, with
``uuid`` and ``parentUuid`` assigned - and deleted once the server has
acknowledged it. After a crash or ``kill -9`` the next engine on the same
directory replays the rows in ``seq`` order; a replay of an entry whose reply
was lost is recognised by the server's 409, never stored twice.

SQLite in WAL mode: standard library; one INSERT is one small append to the
log, with no fsync under ``synchronous=NORMAL`` (a killed process loses
nothing; a power cut may lose the last commits - ``"FULL"`` closes that for
an fsync per entry).

One spool, one consumer: an exclusive ``fcntl.flock`` on ``spool_dir/lock``,
held while open and dropped by the kernel when the process dies. A second
process or engine gets ``SpoolLockedError``; a forked child gives up its copy
and never touches the parent's database.

Disk is bounded: ``max_bytes`` caps the stored bytes (session id + entry
JSON; SQLite adds page overhead and reuses freed pages). An entry that does
not fit: ``drop_newest`` refuses it, ``drop_oldest`` deletes the oldest rows
(those entries are still delivered from memory, only no longer crash-safe),
``block`` waits up to ``block_timeout`` for acks, then refuses. All counted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from ..diagnostics import SPOOL_RESET, DiagnosticSink
from ..entries import dumps_entry
from ..errors import ConfigError, SpoolLockedError

__all__ = [
    "DEFAULT_SPOOL_MAX_BYTES",
    "SPOOL_DB_NAME",
    "SPOOL_LOCK_NAME",
    "Spool",
    "SpoolPolicy",
    "SpoolStats",
    "SpoolWrite",
    "SpooledEntry",
]

SpoolPolicy = Literal["drop_newest", "drop_oldest", "block"]
_POLICIES: Final = ("drop_newest", "drop_oldest", "block")

DEFAULT_SPOOL_MAX_BYTES: Final = 256 * 1024 * 1024
SPOOL_DB_NAME: Final = "spool.sqlite3"
SPOOL_LOCK_NAME: Final = "lock"

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS spool ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " session_id TEXT NOT NULL,"
    " entry BLOB NOT NULL)"
)

# Connections a forked child inherited: never used and never closed there
# (closing could checkpoint the parent's live WAL), only kept from the GC.
_ABANDONED: list[sqlite3.Connection] = []


@dataclass(frozen=True, slots=True)
class SpooledEntry:
    """One pending row: ``seq`` orders all rows of a spool, across sessions."""

    seq: int
    session_id: str
    entry: bytes


@dataclass(frozen=True, slots=True)
class SpoolWrite:
    """What ``append`` did: ``seq`` of the new row (None: refused, counted),
    and the ``seq`` of rows evicted to make room (``drop_oldest`` only)."""

    seq: int | None
    evicted: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """The spool in numbers (health). ``write_errors``: INSERTs refused and
    DELETEs left undone because SQLite failed (disk full, I/O error)."""

    pending: int
    pending_bytes: int
    max_bytes: int
    written: int
    acked: int
    dropped_full: int
    evicted: int
    recovered: int
    unreadable: int
    write_errors: int


@dataclass(slots=True)
class _Counters:
    written: int = 0
    acked: int = 0
    dropped_full: int = 0
    evicted: int = 0
    recovered: int = 0
    unreadable: int = 0
    write_errors: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # seq -> bytes, pending rows


def _size(session_id: str, entry: bytes) -> int:
    return len(session_id.encode("utf-8", "surrogatepass")) + len(entry)


class Spool:
    """An on-disk FIFO of entries, owned by one engine at a time.

    Args:
        spool_dir: directory (created if missing) holding ``spool.sqlite3``
            and ``lock``.
        max_bytes: cap on the stored entries' bytes.
        policy: what to do with an entry that does not fit (module docstring).
        block_timeout: longest wait of ``append`` under ``block``, in seconds.
        synchronous: SQLite's ``synchronous`` pragma, ``"NORMAL"`` (survives
            a killed process) or ``"FULL"`` (also survives a power cut).
        on_reset: given, a database SQLite cannot read is renamed to
            ``spool.sqlite3.damaged-<time>-<pid>`` (kept for inspection), this
            sink is told (``spool_reset`` with ``path``), and an empty spool
            starts; without it such a file raises ``ConfigError``.

    Raises:
        SpoolLockedError: another process (or engine) holds this spool.
        ConfigError: a setting is unusable or the directory cannot be used.
    """

    def __init__(
        self,
        spool_dir: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        policy: SpoolPolicy = "drop_newest",
        block_timeout: float = 1.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        on_reset: DiagnosticSink | None = None,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ConfigError("spool max_bytes must be a positive int")
        if policy not in _POLICIES:
            raise ConfigError(f"spool policy must be one of {_POLICIES}, not {policy!r}")
        if not 0 <= block_timeout <= 3600:
            raise ConfigError("spool block_timeout must be in [0, 3600] seconds")
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigError("spool synchronous must be 'NORMAL' or 'FULL'")
        self.path = Path(spool_dir)
        self.max_bytes = max_bytes
        self.policy: SpoolPolicy = policy
        self.block_timeout = float(block_timeout)
        try:
            # Entries can hold anything the app logs: owner-only directory and files
            # (SQLite gives its -wal and -shm files the database file's mode).
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock_fd = os.open(self.path / SPOOL_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(os.open(self.path / SPOOL_DB_NAME, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise ConfigError(f"cannot use spool directory: {exc.strerror}") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            raise SpoolLockedError(
                f"spool directory {str(self.path)!r} is in use by another process or engine"
            ) from None
        self._lock_fd: int | None = lock_fd
        self._owner_pid = os.getpid()
        self._mutex = threading.Lock()
        self._room = threading.Condition(self._mutex)
        self._c = _Counters()
        self._bytes = 0
        self._replayed: dict[int, tuple[dict[str, Any], int]] = {}
        try:
            self._conn: sqlite3.Connection | None = None
            rows = self._open(synchronous)
        except sqlite3.Error as exc:
            if on_reset is None:
                self._release_lock()
                raise ConfigError(f"cannot open spool database: {exc}") from None
            # A damaged file must not stop the app: keep it for inspection
            # under another name, say so, and start an empty spool.
            try:
                kept = self._move_aside()
                rows = self._open(synchronous)
            except (OSError, sqlite3.Error) as again:
                self._release_lock()
                raise ConfigError(f"cannot open spool database: {again}") from None
            on_reset("error", SPOOL_RESET, {"path": str(kept), "error": str(exc)})
        for seq, nbytes in rows:
            self._c.sizes[int(seq)] = int(nbytes)
            self._bytes += int(nbytes)
        self._c.recovered = len(rows)
        ref = weakref.WeakMethod(self._after_fork_in_child)

        def _child() -> None:
            method = ref()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=_child)

    def _open(self, synchronous: str) -> list[Any]:
        self._conn = self._connect(synchronous)
        return self._conn.execute(
            "SELECT seq, length(CAST(session_id AS BLOB)) + length(entry) FROM spool ORDER BY seq"
        ).fetchall()

    def _move_aside(self) -> Path:
        """Rename the damaged database (and its WAL files) to ``*.damaged-<time>``."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        stamp = time.strftime("%Y%m%dT%H%M%S")
        db = self.path / SPOOL_DB_NAME
        kept = db.with_name(f"{SPOOL_DB_NAME}.damaged-{stamp}-{os.getpid()}")
        for suffix in ("-wal", "-shm"):
            side = db.with_name(db.name + suffix)
            if side.exists():
                side.rename(kept.with_name(kept.name + suffix))
        db.rename(kept)
        os.close(os.open(db, os.O_RDWR | os.O_CREAT, 0o600))
        return kept

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path / SPOOL_DB_NAME, isolation_level=None, check_same_thread=False
        )
        try:
            # We hold the directory's flock, so nobody else may open the file:
            # exclusive locking skips SQLite's per-transaction file locks and the
            # shared-memory index (raw sqlite3: 31 -> 19 us per INSERT+DELETE;
            # through this class 0-10 %, within the noise of a loaded machine).
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute(_SCHEMA)
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r}, pending={len(self._c.sizes)}, bytes={self._bytes})"

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the caller's side -------------------------------------------------

    def append(self, session_id: str, entry: bytes) -> SpoolWrite:
        """Store one entry durably (committed when this returns) or refuse it."""
        size = _size(session_id, entry)
        with self._room:
            conn = self._live()
            evicted: tuple[int, ...] = ()
            if size > self.max_bytes:
                self._c.dropped_full += 1
                return SpoolWrite(None)
            if self._bytes + size > self.max_bytes:
                if self.policy == "drop_oldest":
                    evicted = self._evict_for(conn, size)
                elif self.policy == "block":
                    deadline = time.monotonic() + self.block_timeout
                    while self._bytes + size > self.max_bytes and self._conn is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._room.wait(left)
                    conn = self._live()
                if self._bytes + size > self.max_bytes:
                    self._c.dropped_full += 1
                    return SpoolWrite(None, evicted)
            try:
                seq = conn.execute(
                    "INSERT INTO spool (session_id, entry) VALUES (?, ?)", (session_id, entry)
                ).lastrowid
            except sqlite3.Error:  # disk full, I/O error: refuse, count, never raise
                self._c.write_errors += 1
                return SpoolWrite(None, evicted)
            assert seq is not None
            self._c.sizes[seq] = size
            self._bytes += size
            self._c.written += 1
            return SpoolWrite(seq, evicted)

    def _evict_for(self, conn: sqlite3.Connection, size: int) -> tuple[int, ...]:
        victims: list[int] = []
        freed = 0
        need = self._bytes + size - self.max_bytes
        for seq in self._c.sizes:  # insertion order is seq order (rows load ORDER BY seq)
            if freed >= need:
                break
            victims.append(seq)
            freed += self._c.sizes[seq]
        self._delete(conn, victims)
        self._c.evicted += len(victims)
        return tuple(victims)

    # -- the worker's side -------------------------------------------------

    def ack(self, *seqs: int) -> None:
        """The server acknowledged these rows (or they failed for good): delete them."""
        if not seqs:
            return
        with self._room:
            if self._conn is None:
                return
            known = [s for s in seqs if s in self._c.sizes]
            try:
                self._delete(self._conn, known)
            except sqlite3.Error:  # the rows stay; a replay of them is harmless (409)
                self._c.write_errors += 1
                return
            self._c.acked += len(known)
            self._room.notify_all()

    def _delete(self, conn: sqlite3.Connection, seqs: list[int]) -> None:
        if not seqs:
            return
        if len(seqs) == 1:
            conn.execute("DELETE FROM spool WHERE seq = ?", (seqs[0],))
        else:
            conn.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in seqs])
        for s in seqs:
            self._bytes -= self._c.sizes.pop(s, 0)

    def pending(self) -> list[SpooledEntry]:
        """Every row not yet acknowledged, oldest first (replay after a restart)."""
        with self._mutex:
            conn = self._live()
            rows = conn.execute("SELECT seq, session_id, entry FROM spool ORDER BY seq").fetchall()
        return [SpooledEntry(int(seq), str(sid), bytes(entry)) for seq, sid, entry in rows]

    # -- the engine's seam (``_seams.Spool``) ------------------------------

    def accept(self, session_id: str, entry: dict[str, Any]) -> int | None:
        """Serialise and store one finished entry; its key for ``acknowledge``.

        An entry handed out by :meth:`replay` is already stored: its existing
        row's key is returned and nothing is written twice. None: refused by
        the cap (counted in ``dropped_full``).
        """
        with self._mutex:
            held = self._replayed.pop(id(entry), None)
        if held is not None and held[0] is entry:
            return held[1]
        if self._conn is None:
            return None  # closed under a racing submit: refused, never raised
        try:
            return self.append(session_id, dumps_entry(entry)).seq
        except ConfigError:
            return None

    def acknowledge(self, key: object) -> None:
        """The entry was delivered or failed for good: delete its row."""
        if isinstance(key, int) and not isinstance(key, bool):
            self.ack(key)

    def replay(self) -> list[tuple[str, dict[str, Any]]]:
        """Pending entries of an earlier run, oldest first, as dicts.

        Rows that no longer parse as a JSON object (a damaged file) are
        deleted and counted in ``unreadable``; they cannot be delivered.
        """
        out: list[tuple[str, dict[str, Any]]] = []
        bad: list[int] = []
        held: dict[int, tuple[dict[str, Any], int]] = {}
        for row in self.pending():
            try:
                entry = orjson.loads(row.entry)
            except orjson.JSONDecodeError:
                entry = None
            if not isinstance(entry, dict):
                bad.append(row.seq)
                continue
            held[id(entry)] = (entry, row.seq)
            out.append((row.session_id, entry))
        with self._room:
            self._replayed.update(held)
            if bad and self._conn is not None:
                self._delete(self._conn, bad)
                self._c.unreadable += len(bad)
        return out

    def stats(self) -> SpoolStats:
        with self._mutex:
            c = self._c
            return SpoolStats(
                pending=len(c.sizes),
                pending_bytes=self._bytes,
                max_bytes=self.max_bytes,
                written=c.written,
                acked=c.acked,
                dropped_full=c.dropped_full,
                evicted=c.evicted,
                recovered=c.recovered,
                unreadable=c.unreadable,
                write_errors=c.write_errors,
            )

    @property
    def closed(self) -> bool:
        return self._conn is None

    def close(self) -> None:
        """Close the database and release the lock; pending rows stay for the next run."""
        with self._room:
            conn, self._conn = self._conn, None
            self._room.notify_all()
        if conn is not None and os.getpid() == self._owner_pid:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._release_lock()

    # -- internals ---------------------------------------------------------

    def _live(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise ConfigError("the spool is closed")
        return conn

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # the lock goes with the last descriptor

    def _after_fork_in_child(self) -> None:
        # The child shares the parent's lock (same open file description) and
        # SQLite connections must not cross a fork: drop both, touch nothing.
        if self._conn is not None:
            _ABANDONED.append(self._conn)
        self._conn = None
        self._mutex = threading.Lock()
        self._room = threading.Condition(self._mutex)
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closes the child's copy only; the parent keeps its lock
