"""The last line of defence against silent failure: a few plain lines on stderr.

A library should not decide where its log records go, so the
``ingress_logging`` logger has a ``NullHandler`` and the logging handler
refuses the library's own records. An application that never routed the
library's diagnostics would then lose every record to a wrong token or a
server that is down without a word. So when a diagnostics event reaches the
default sink and nothing else would show it, this module writes:

* the first time each kind of failure happens, one sentence saying what
  happened, how many entries are not delivered so far, and what to change;
* at interpreter exit, one summary line if anything was not delivered,
  counted by reason.

"Something else would show it" means: an explicit ``diagnostics=`` sink, a
plugin's ``ingress_diagnostic`` sink, ``INGRESS_LOGGING_DIAGNOSTICS_FILE``
(the host decides those, see ``plugins.PluginHost.diagnostic``), or a
handler on the diagnostics logger's way up (``ingress_logging``, or the root
logger) other than a ``NullHandler`` or the library's own ``IngressHandler``.
A healthy run writes nothing; no line ever holds a token (events carry
numbers and short reasons only) or a traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import threading
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from . import diagnostics as ev
from ._messages import describe_reason, entries
from .diagnostics import DIAGNOSTICS_LOGGER_NAME, DiagnosticData

__all__ = ["NOTICES", "Notices", "not_a_route"]

PREFIX: Final = "ingress_logging: "
#: At most this many first-of-a-kind lines per process, whatever happens.
MAX_LINES: Final = 20
_TOKEN_HINT: Final = "Set INGRESS_LOGGING_TOKEN (or INGRESS_LOGGING_TOKEN_FILE) or token=."

_NOT_ROUTES: set[type[logging.Handler]] = {logging.NullHandler}


def not_a_route(handler_type: type[logging.Handler]) -> None:
    """Declare a handler type that never shows the library's own records."""
    _NOT_ROUTES.add(handler_type)


def logger_routed() -> bool:
    """True when a record of the diagnostics logger would reach a real handler."""
    logger: logging.Logger | None = logging.getLogger(DIAGNOSTICS_LOGGER_NAME)
    while logger is not None:
        for handler in logger.handlers:
            if not isinstance(handler, tuple(_NOT_ROUTES)):
                return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


def _origin(url: str | None) -> str:
    """`` at scheme://host:port`` of a URL (never its path: that holds the session id)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if not parts.scheme or not parts.netloc:
        return ""
    return f" at {parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _host(url: str | None) -> str:
    try:
        return urlsplit(url or "").hostname or "that host"
    except ValueError:
        return "that host"


class Notices:
    """Counts what was not delivered and says so, once per kind, on stderr."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._said: set[str] = set()
        self._undelivered: dict[str, int] = {}
        self._lines = 0
        self._transport_error = ""

    # -- what the host reports ------------------------------------------

    def note_transport_error(self, words: str) -> None:
        """Why the last request got no reply (``connection refused``), for the next notice.

        The protocol's events carry numbers only; the driver that saw the
        error says it here, in words that never hold a token or content.
        """
        self._transport_error = words

    def last_transport_error(self) -> str:
        """The words of the last request that got no reply (empty: none yet)."""
        return self._transport_error

    def reset(self) -> None:
        """Forget everything reported so far, drops not yet reported included (for tests)."""
        ev.flush_drop_counters()
        with self._lock:
            self._said.clear()
            self._undelivered.clear()
            self._lines = 0
            self._transport_error = ""

    def observe(
        self, event: str, data: DiagnosticData, *, url: str | None = None, detail: str = ""
    ) -> None:
        """One diagnostics event that nothing else will show. Never raises."""
        with contextlib.suppress(Exception):  # a notice must never break logging
            self._observe(event, data, url, detail)

    def _observe(self, event: str, data: DiagnosticData, url: str | None, detail: str) -> None:
        reason = str(data.get("reason", ""))
        counted = event in (ev.DELIVERY_DROPPED, ev.DELIVERY_FAILED)
        with self._lock:
            if counted:
                count = data.get("count")
                n = count if isinstance(count, int) and count > 0 else 1
                self._undelivered[reason] = self._undelivered.get(reason, 0) + n
            total = sum(self._undelivered.values())
        kind, sentence = self._classify(event, data, reason, url, detail)
        if kind is None:
            return
        with self._lock:
            if kind in self._said or self._lines >= MAX_LINES:
                return
            if logger_routed():
                return
            self._said.add(kind)
            self._lines += 1
        so_far = f"; {entries(total)} not delivered so far" if total else ""
        _write(f"{PREFIX}{sentence[0]}{so_far}.{sentence[1]}")

    def _classify(
        self, event: str, data: DiagnosticData, reason: str, url: str | None, detail: str
    ) -> tuple[str | None, tuple[str, str]]:
        at = _origin(url)
        # Token problems are said with the delivery failure, which carries the count.
        if event == ev.DELIVERY_FAILED and reason == "unauthorized":
            return "token", (f"the server rejected the token (401){at}", f" {_TOKEN_HINT}")
        if event == ev.DELIVERY_FAILED and reason == "no_token":
            return "no_token", (f"no token is configured, so nothing can be sent{at}", _hint())
        if event == ev.SESSION_PERSIST_FAIL_STATUS:
            status = data.get("status")
            if status is None:
                why = f" ({self._transport_error})" if self._transport_error else ""
                return "unreachable", (
                    f"cannot connect{at.replace(' at ', ' to ', 1)}{why}",
                    " Entries stay queued and are retried.",
                )
            if isinstance(status, int) and status >= 500:
                return "server_error", (
                    f"the server{at} answered {status}",
                    " Entries stay queued and are retried.",
                )
            return None, ("", "")
        if event == ev.PLUGIN_PREPARE_ENTRY_FAILED:
            plugin = data.get("plugin")
            why = f": {detail}" if detail else ""
            return f"plugin:{plugin}", (
                f"the plugin {plugin} failed on an entry{why}; entries it cannot prepare "
                "are dropped, never shipped unprepared",
                "",
            )
        if event not in (ev.DELIVERY_DROPPED, ev.DELIVERY_FAILED):
            return None, ("", "")
        if reason in ("prepare_entry", "closed"):
            return None, ("", "")  # the plugin's own line / the exit summary say it
        if reason == "error:InsecureTransportError":
            return "insecure", (
                f"refusing to send the token over plain http to {_host(url)}",
                " Use https, or pass allow_insecure_http=True if the network is trusted.",
            )
        if reason in ("no_session_id", "invalid_session_id"):
            what = (
                "named no session id" if reason == "no_session_id" else "had an invalid session id"
            )
            return reason, (
                f"a record {what}, so it was dropped",
                " Pass session_id= to IngressHandler, extra={'session_id': ...}, "
                "or use ingress_logging.session(...).",
            )
        if reason == "permanent":
            status = data.get("status")
            hint = " Is the URL right?" if status == 404 else ""
            return f"permanent:{status}", (f"the server{at} refused entries ({status})", hint)
        return f"reason:{reason}", (
            f"entries were not delivered{at}: {describe_reason(reason)}",
            "",
        )

    # -- exit ----------------------------------------------------------------

    def undelivered(self) -> Mapping[str, int]:
        """Entries not delivered so far, by reason (of those nothing else reported)."""
        with self._lock:
            return dict(self._undelivered)

    def summary(self) -> str | None:
        """The exit line, or None when everything reported was delivered."""
        counts = {r: n for r, n in self.undelivered().items() if n}
        if not counts:
            return None
        parts = "; ".join(
            f"{describe_reason(r)}: {n}" for r, n in sorted(counts.items(), key=lambda kv: -kv[1])
        )
        return f"{PREFIX}{entries(sum(counts.values()))} not delivered in this run: {parts}."

    def at_exit(self) -> None:
        ev.flush_drop_counters()
        line = self.summary()
        if line is None:
            return
        if logger_routed():
            logging.getLogger(DIAGNOSTICS_LOGGER_NAME).warning(line[len(PREFIX) :])
        else:
            _write(line)


def _hint() -> str:
    return f" {_TOKEN_HINT}"


def _write(line: str) -> None:
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except Exception:
        pass


NOTICES: Final = Notices()
# Registered when the package is imported, before any engine registers its
# own exit hook: atexit runs hooks last-in first-out, so the summary comes
# after every engine has closed and reported its last drops.
atexit.register(NOTICES.at_exit)
