"""``serve()``: the server in the foreground, one process or several workers.

SQLite runs one process: it has one writer, and a second process would only
queue behind the database's write lock (and ``:memory:`` exists in one
process). PostgreSQL runs ``workers`` processes that share one listening
socket (the kernel spreads connections over them); the database serialises
the appends, so any number of workers - on any number of machines - are
correct. Migrations run once, in the parent, before the workers start.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import secrets
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from ._faults import FaultInjector
from ._metrics import ACCESS_LOGGER
from ._runner import bind_socket
from ._server import DEFAULT_MAX_BODY_BYTES, IngressServer, safe_db
from .store import is_postgres_url, open_store

__all__ = ["is_loopback", "parse_duration", "serve", "tls_context"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``"30d"``, ``"12h"``, ``"15m"``, ``"90s"`` or plain seconds, as seconds (> 0)."""
    raw = text.strip().lower()
    unit = _UNITS.get(raw[-1:])
    number = raw[:-1] if unit is not None else raw
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 15m or 90s") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def tls_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """A server-side TLS context from a certificate chain and its key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {certfile!r}: {exc}") from None
    return context


def _listen(host: str, port: int) -> Any:
    try:
        return bind_socket(host, port)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {reason}") from None
    # strerror carries the whole sentence, so callers print it as is


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    db: str = "./ingress.db",
    token: str | None = None,
    *,
    oauth_token: str | None = None,
    org_uuid: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    faults: FaultInjector | Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
    announce: bool = True,
    on_ready: Callable[[IngressServer], None] | None = None,
    workers: int = 1,
    certfile: str | None = None,
    keyfile: str | None = None,
    retention: float | None = None,
    access_log: bool = False,
    viewer: bool = True,
) -> None:
    """Serve until Ctrl-C or SIGTERM (or until ``stop`` is set), blocking the caller.

    ``token`` (the development token, every scope) falls back to
    ``$INGRESS_LOGGING_TOKEN``; without either the store must hold named
    tokens (``ingress-logging tokens create``), else this raises ConfigError
    (a token is never generated and printed). With ``announce`` the URL,
    database (never a password) and org uuid are printed to stderr, and a
    warning when a non-loopback ``host`` is served over plain HTTP.
    ``on_ready`` is called with the running server (one worker only).
    ``workers`` > 1 needs PostgreSQL; ``certfile``/``keyfile`` serve HTTPS;
    ``retention`` (seconds) removes sessions idle longer; ``access_log``
    writes one JSON line per request to stderr. ``viewer`` serves the web
    viewer at ``/`` (it needs the ``server`` extra; without it, a note says so).
    """
    token = token if token is not None else os.environ.get("INGRESS_LOGGING_TOKEN") or None
    if workers < 1:
        raise ConfigError("workers must be at least 1")
    if workers > 1 and not is_postgres_url(db):
        raise ConfigError(
            "several workers need PostgreSQL (--db postgresql://...): SQLite has one writer"
        )
    context = tls_context(certfile, keyfile) if certfile else None
    store = open_store(db)  # migrations run here, once, before any worker starts
    try:
        named = bool(store.list_tokens())
    finally:
        store.close()
    if not token and not named:
        raise ConfigError(
            "serve needs a token: --token or INGRESS_LOGGING_TOKEN, or a named token in"
            " the store (ingress-logging tokens create)"
        )
    if announce and not is_loopback(host) and context is None:
        print(
            f"warning: serving {host} over plain HTTP: tokens and transcripts travel"
            " unencrypted; use --certfile/--keyfile or a TLS reverse proxy (docs/server.md)",
            file=sys.stderr,
        )
    if viewer and not _viewer_installed():
        print(
            "note: the web viewer needs the server extra (starlette, jinja2):"
            " pip install 'ingress-logging[server]'",
            file=sys.stderr,
        )
        viewer = False
    # One key for every worker: a browser signed in on one is signed in on all.
    viewer_secret = secrets.token_bytes(32)
    sock = _listen(host, port)
    scheme = "https" if context else "http"
    if access_log:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        ACCESS_LOGGER.addHandler(handler)
        ACCESS_LOGGER.setLevel(logging.INFO)
        ACCESS_LOGGER.propagate = False

    def make_server(worker: int | None = None) -> IngressServer:
        return IngressServer(
            token,
            db=db,
            host=host,
            port=sock.getsockname()[1],
            oauth_token=oauth_token if oauth_token is not None else token,
            org_uuid=org_uuid,
            max_body_bytes=max_body_bytes,
            faults=faults,
            record_requests=False,
            access_log=access_log,
            retention=retention,
            ssl_context=context,
            sock=sock,
            viewer=viewer,
            viewer_secret=viewer_secret,
            worker=worker,
        )

    waiter = stop if stop is not None else threading.Event()
    # SIGTERM (process managers, CI) stops it like Ctrl-C: a clean close, exit 0.
    # Installed before the address is announced, so a signal sent as soon as the
    # server answers never meets the default (kill) handler.
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if on_main else None
    children: list[int] = []
    server: IngressServer | None = None
    try:
        if workers > 1:
            children = [_fork_worker(make_server, n) for n in range(workers)]
        else:
            server = make_server().start()
        if announce:
            base = f"{scheme}://[{host}]" if ":" in host else f"{scheme}://{host}"
            print(
                f"session-ingress listening on {base}:{sock.getsockname()[1]}"
                f" (db: {safe_db(db)}, {workers} worker{'s' if workers > 1 else ''})",
                file=sys.stderr,
            )
            if viewer:
                print(f"  web viewer: {base}:{sock.getsockname()[1]}/", file=sys.stderr)
            org = org_uuid if org_uuid is not None else "any"
            print(f"  x-organization-uuid for OAuth reads: {org}", file=sys.stderr)
            sys.stderr.flush()
        if on_ready is not None and server is not None:
            on_ready(server)
        while not waiter.wait(0.5):
            if children and _any_exited(children):
                raise ConfigError("a worker process exited; stopping the others")
    except KeyboardInterrupt:
        pass
    finally:
        for pid in children:
            _stop_child(pid)
        if server is not None:
            server.close()
        sock.close()
        if on_main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _viewer_installed() -> bool:
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def _fork_worker(make_server: Callable[[int], IngressServer], number: int) -> int:
    """A child process (worker ``number``) serving on the shared socket until SIGTERM."""
    pid = os.fork()
    if pid:
        return pid
    status = 0
    try:
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        signal.signal(signal.SIGINT, lambda *_: stopped.set())
        with make_server(number):
            while not stopped.wait(0.5):
                pass
    except BaseException:  # a worker reports and exits; the parent notices
        logging.getLogger("ingress_logging.server").exception("worker %d failed", os.getpid())
        status = 1
    finally:
        os._exit(status)


def _any_exited(children: list[int]) -> bool:
    for pid in children:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            children.remove(pid)
            return True
    return False


def _stop_child(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
