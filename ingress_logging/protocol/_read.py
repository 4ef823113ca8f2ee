"""Reading a session and paging teleport events: reply interpretation, once.

Both clients feed raw replies (status + body bytes) in and get the seed's
result out, so the rules of PROTOCOL.md's read and events tables live here
and nowhere else. Bodies are parsed with orjson; any reply of the wrong shape
is an error result (None plus a diagnostic), never an exception, except 401,
which raises ``SessionExpiredError`` as the seed throws.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import orjson

from .. import diagnostics as ev
from ..errors import SessionExpiredError
from ._append import Emit

__all__ = [
    "TELEPORT_MAX_PAGES",
    "TELEPORT_PAGE_LIMIT",
    "TeleportPager",
    "head_from_read",
    "interpret_read",
    "interpret_read_error",
    "read_without_token",
]

logger = logging.getLogger("ingress_logging.protocol")

TELEPORT_PAGE_LIMIT: Final = 1000
TELEPORT_MAX_PAGES: Final = 100


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def interpret_read(status: int, body: bytes, emit: Emit) -> list[dict[str, Any]] | None:
    """The seed's ``fetchSessionLogsFromUrl`` after the reply has arrived."""
    if status == 200:
        data = _loads(body)
        loglines = data.get("loglines") if isinstance(data, dict) else None
        if not isinstance(loglines, list) or not all(isinstance(e, dict) for e in loglines):
            logger.debug("Invalid session logs response format")
            emit("error", ev.SESSION_GET_FAIL_INVALID_RESPONSE, {})
            return None
        logger.debug("Fetched %d session logs", len(loglines))
        return loglines
    if status == 404:
        logger.debug("No existing logs for session")
        emit("warn", ev.SESSION_GET_NO_LOGS_FOR_SESSION, {})
        return []
    if status == 401:
        logger.debug("Auth token expired or invalid")
        emit("error", ev.SESSION_GET_FAIL_BAD_TOKEN, {})
        raise SessionExpiredError
    logger.debug("Failed to fetch session logs: %d", status)
    emit("error", ev.SESSION_GET_FAIL_STATUS, {"status": status})
    return None


def read_without_token(emit: Emit) -> None:
    """A read asked for with no token: the seed returns null without a request."""
    logger.debug("No session token available for fetching session logs")
    emit("error", ev.SESSION_GET_FAIL_NO_TOKEN, {})


def interpret_read_error(error: BaseException | None, emit: Emit) -> None:
    """A read that failed before any reply (timeout, connection, oversize body)."""
    logger.debug("Error fetching session logs: %s", type(error).__name__)
    emit("error", ev.SESSION_GET_FAIL_STATUS, {})


def head_from_read(logs: list[dict[str, Any]] | None) -> str | None:
    """The seed updates its head from the *last* entry only, if that one has a uuid."""
    if not logs:
        return None
    uuid = logs[-1].get("uuid")
    return uuid if isinstance(uuid, str) and uuid else None


class TeleportPager:
    """Cursor loop over ``teleport-events`` pages, with the seed's 100-page guard.

    Drive it as::

        while (params := pager.next_params()) is not None:
            try:
                reply = get(url, params=params)
            except TransportError as exc:
                pager.on_transport_error(exc)
            else:
                pager.on_response(reply.status_code, reply.content)
        result = pager.result
    """

    def __init__(self, emit: Emit, *, max_pages: int = TELEPORT_MAX_PAGES) -> None:
        self._emit = emit
        self._max_pages = max_pages
        self._cursor: str | None = None
        self._gathered: list[dict[str, Any]] = []
        self.pages = 0
        self.done = False
        self.result: list[dict[str, Any]] | None = None

    def next_params(self) -> dict[str, str | int] | None:
        if self.done:
            return None
        if self.pages >= self._max_pages:
            self._report_page_cap()
            self._finish(self._gathered)
            return None
        params: dict[str, str | int] = {"limit": TELEPORT_PAGE_LIMIT}
        if self._cursor is not None:
            params["cursor"] = self._cursor
        return params

    def on_transport_error(self, error: BaseException | None = None) -> None:
        logger.debug("Teleport events fetch failed: %s", type(error).__name__)
        self._emit("error", ev.TELEPORT_EVENTS_FETCH_FAIL, {})
        self._finish(None)

    def on_response(self, status: int, body: bytes) -> None:
        if status == 404:
            logger.debug("Teleport session not found (page %d)", self.pages)
            self._emit("warn", ev.TELEPORT_EVENTS_NOT_FOUND, {})
            self._finish(None if self.pages == 0 else self._gathered)
            return
        if status == 401:
            self._emit("error", ev.TELEPORT_EVENTS_BAD_TOKEN, {})
            self._finish(None)
            raise SessionExpiredError
        if status >= 500:
            # The seed's axios call rejects every 5xx (validateStatus < 500),
            # so the seed reports it as a failed fetch, not a bad status.
            logger.debug("Teleport events fetch failed: status %d", status)
            self._emit("error", ev.TELEPORT_EVENTS_FETCH_FAIL, {})
            self._finish(None)
            return
        if status != 200:
            logger.debug("Teleport events returned %d", status)
            self._emit("error", ev.TELEPORT_EVENTS_BAD_STATUS, {"status": status})
            self._finish(None)
            return
        page = _loads(body)
        data = page.get("data") if isinstance(page, dict) else None
        next_cursor = page.get("next_cursor") if isinstance(page, dict) else None
        if (
            not isinstance(data, list)
            or not all(isinstance(event, dict) for event in data)
            or not (next_cursor is None or isinstance(next_cursor, str))
        ):
            self._emit("error", ev.TELEPORT_EVENTS_INVALID_SHAPE, {})
            self._finish(None)
            return
        for event in data:
            payload = event.get("payload")
            # Null payloads are threadstore events the server skips; skip them too.
            if isinstance(payload, dict):
                self._gathered.append(payload)
        self.pages += 1
        if next_cursor is None:
            if self.pages >= self._max_pages:
                # As the seed: the cap is reported whenever that many pages
                # were read, even when the last of them ended the stream.
                self._report_page_cap()
            logger.debug("Fetched %d events over %d page(s)", len(self._gathered), self.pages)
            self._finish(self._gathered)
        else:
            self._cursor = next_cursor

    def _report_page_cap(self) -> None:
        logger.debug("Teleport events hit page cap (%d)", self._max_pages)
        # The seed's events carry exactly the seed's fields (here: none);
        # the numbers go to the debug log instead.
        self._emit("warn", ev.TELEPORT_EVENTS_PAGE_CAP, {})

    def _finish(self, result: list[dict[str, Any]] | None) -> None:
        self.done = True
        self.result = result
        return
