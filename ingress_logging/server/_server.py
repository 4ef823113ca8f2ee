"""Lifecycle of the server: start, stop, restart, and what tests inspect.

``IngressServer`` owns a :class:`Store`, a :class:`FaultInjector` and a
:class:`Runner` (its HTTP/1.1 connections on their own event loop thread).
``run_server()`` is the context manager most code wants; ``serve()`` (in
``_serve``) is the blocking entry point behind the command line.
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from .._session_id import quote_session_id, validate_session_id
from ._asgi import IngressApp
from ._faults import FaultInjector
from ._metrics import Metrics
from ._runner import Runner, bind_socket
from ._state import RequestRecord, ServerState
from .store import Store, open_store

__all__ = ["DEFAULT_MAX_BODY_BYTES", "IngressServer", "run_server", "safe_db"]

#: Largest accepted PUT body; larger ones get 413.
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


class IngressServer:
    """A real session-ingress server on a loopback socket, backed by SQLite.

    ``token`` is the ingress bearer token (PUT/GET; None: a random one).
    ``oauth_token`` and ``org_uuid`` are what the OAuth read and teleport
    events accept; left as None, the OAuth token is the ingress token and any
    ``x-organization-uuid`` is accepted (it must still be sent), so a test
    written from the protocol alone works against the defaults. Set them to
    check that a client sends the right credentials (wrong token: 401, wrong
    org: 403). ``org_uuid`` always holds a value to send. ``port=0`` picks an ephemeral port, kept
    across :meth:`restart`. Tokens never appear in ``repr()``.
    ``viewer=True`` serves the web viewer (``ingress_logging.server.viewer``,
    the ``server`` extra) at every path that is not the protocol's, its
    sign-in cookies signed with ``viewer_secret`` (None: a random one).
    ``worker`` numbers the process among ``serve``'s workers (its metrics
    carry it as a label).
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        db: str = ":memory:",
        host: str = "127.0.0.1",
        port: int = 0,
        oauth_token: str | None = None,
        org_uuid: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        faults: FaultInjector | Mapping[str, Any] | None = None,
        record_requests: bool = True,
        access_log: bool = False,
        retention: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
        viewer: bool = False,
        viewer_secret: bytes | None = None,
        worker: int | None = None,
    ) -> None:
        self.token = token if token is not None else f"ingress-{secrets.token_urlsafe(16)}"
        self.oauth_token = oauth_token if oauth_token is not None else self.token
        self.org_uuid = org_uuid if org_uuid is not None else str(uuid.uuid4())
        self.org_uuid_checked = org_uuid is not None
        self.db = db
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        if isinstance(faults, FaultInjector):
            self.faults = faults
        else:
            self.faults = FaultInjector()
            if faults is not None:
                self.faults.configure(faults)
        self.record_requests = record_requests
        self.access_log = access_log
        self.retention = retention
        self.metrics = Metrics(worker=worker)
        self._ssl = ssl_context
        self._sock = sock
        self.viewer = viewer
        self._viewer_secret = viewer_secret
        self._store: Store | None = None
        self._runner: Runner | None = None
        self._records: list[RequestRecord] = []
        self._records_changed = threading.Condition()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"IngressServer({self.host}:{self.port}, db={safe_db(self.db)!r}, {state})"

    # --- lifecycle ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def store(self) -> Store:
        """The store (opened on first use, kept across restarts for ``:memory:``)."""
        if self._store is None:
            self._store = open_store(self.db)
        return self._store

    def start(self) -> Self:
        """Bind and serve in a background thread; idempotent."""
        if self._runner is not None:
            return self
        state = ServerState(
            store=self.store,
            faults=self.faults,
            token=self.token,
            oauth_token=self.oauth_token,
            org_uuid=self.org_uuid if self.org_uuid_checked else None,
            max_body_bytes=self.max_body_bytes,
            record=self._record if self.record_requests else None,
            metrics=self.metrics,
            access_log=self.access_log,
        )
        viewer_stopping = threading.Event()
        app = IngressApp(state, fallback=self._viewer_app(viewer_stopping) if self.viewer else None)

        def stopping() -> None:
            app.stopping()
            viewer_stopping.set()  # live pages' streams end instead of holding the stop up

        sock = self._sock if self._sock is not None else bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        runner = Runner(
            app,
            sock,
            on_stopping=stopping,
            ssl_context=self._ssl,
            periodic=None if self.retention is None else (self._sweep_interval(), self.sweep),
        )
        try:
            runner.start_thread(f"ingress-logging-server:{self.port}")
        except BaseException:
            sock.close()
            raise
        self._runner = runner
        return self

    def _viewer_app(self, stopping: threading.Event) -> Any:
        from .viewer import StoreAuth, StoreViewer, viewer_app

        if self._viewer_secret is None:
            self._viewer_secret = secrets.token_bytes(32)  # kept across restarts
        store = self.store
        return viewer_app(
            StoreViewer(store),
            StoreAuth(store, self.token),
            secret=self._viewer_secret,
            stopping=stopping,
        )

    def stop(self) -> None:
        """Stop serving and close every connection; the port is free afterwards.

        The store stays open (a ``:memory:`` database keeps its data); use
        :meth:`close` to release it too.
        """
        runner = self._runner
        if runner is None:
            return
        runner.stop()
        if runner.sock is not self._sock:
            runner.sock.close()
        self._runner = None

    def sweep(self) -> int:
        """Delete the sessions idle longer than ``retention`` now; how many."""
        if self.retention is None:
            return 0
        cutoff = datetime.now(UTC) - timedelta(seconds=self.retention)
        return self.store.sweep(cutoff)

    def _sweep_interval(self) -> float:
        assert self.retention is not None
        return min(max(self.retention / 10, 0.01), 60.0)

    def restart(self) -> None:
        """Stop, then start again on the same port with the same database.

        A file database is closed and reopened, so what survives is what
        SQLite made durable; a ``:memory:`` database is kept as is.
        """
        self.stop()
        if self.db != ":memory:" and self._store is not None:
            self._store.close()
            self._store = None
        self.start()

    def close(self) -> None:
        """Stop and close the store."""
        self.stop()
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- what clients and tests use -------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``: the ``base_api_url`` for clients (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def session_url(self, session_id: str) -> str:
        """The append/read URL of one session (the id validated and quoted)."""
        return f"{self.base_url}/v1/session_ingress/session/{quote_session_id(session_id)}"

    def teleport_url(self, session_id: str) -> str:
        """The teleport-events URL of one session."""
        return f"{self.base_url}/v1/code/sessions/{quote_session_id(session_id)}/teleport-events"

    def entries(self, session_id: str) -> list[dict[str, Any]]:
        """Entries stored for the session, in order (``[]`` if unknown); no HTTP."""
        lines = self.store.loglines(validate_session_id(session_id))
        return [json.loads(line) for line in lines or ()]

    def head(self, session_id: str) -> str | None:
        """The session's chain head (None if unknown or no chained entry)."""
        return self.store.head(validate_session_id(session_id))

    def append_foreign(self, session_id: str, entry: dict[str, Any] | None = None) -> str | None:
        """Append as another writer would (no HTTP, no Last-Uuid check); returns the head."""
        return self.store.append_foreign(validate_session_id(session_id), entry)

    def add_event(
        self, session_id: str, payload: dict[str, Any] | None, *, event_type: str = "unknown"
    ) -> int:
        """Add a teleport-only event; ``payload=None`` makes a null-payload event."""
        return self.store.add_event(validate_session_id(session_id), payload, event_type=event_type)

    def open_connections(self) -> int:
        """Client connections currently open (keep-alive pools hold them idle)."""
        return 0 if self._runner is None else self._runner.connection_count()

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every non-admin request so far, in arrival order."""
        with self._records_changed:
            return list(self._records)

    def clear_requests(self) -> None:
        with self._records_changed:
            self._records.clear()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RequestRecord]:
        """Block until at least ``count`` requests were recorded; TimeoutError if not."""
        with self._records_changed:
            if not self._records_changed.wait_for(lambda: len(self._records) >= count, timeout):
                raise TimeoutError(f"{len(self._records)} of {count} requests within {timeout}s")
            return list(self._records)

    def _record(self, record: RequestRecord) -> None:
        with self._records_changed:
            self._records.append(record)
            self._records_changed.notify_all()


def safe_db(db: str) -> str:
    """The db address without a password (``postgresql://user:***@host/db``)."""
    from urllib.parse import urlsplit

    if "://" not in db:
        return db
    parts = urlsplit(db)
    if parts.password is None:
        return db
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@contextmanager
def run_server(
    token: str | None = None,
    *,
    db: str = ":memory:",
    host: str = "127.0.0.1",
    port: int = 0,
    oauth_token: str | None = None,
    org_uuid: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    faults: FaultInjector | Mapping[str, Any] | None = None,
) -> Iterator[IngressServer]:
    """Run a server in a background thread for the ``with`` block, then shut it down."""
    server = IngressServer(
        token,
        db=db,
        host=host,
        port=port,
        oauth_token=oauth_token,
        org_uuid=org_uuid,
        max_body_bytes=max_body_bytes,
        faults=faults,
    )
    with server:
        yield server
