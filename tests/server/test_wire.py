"""The reply bytes the server writes itself: a cached JSON reply start is the
same as the general header block, whatever the status, headers and close."""

from __future__ import annotations

import pytest

from ingress_logging.server._wire import http_date, json_reply, reply_head


@pytest.mark.parametrize(
    ("status", "extra", "close"),
    [
        (200, None, False),
        (201, None, True),
        (409, {"x-last-uuid": "u-1"}, False),
        (503, {"Retry-After": "1"}, True),
        (418, {}, False),
    ],
)
def test_a_json_reply_is_the_general_reply_with_its_start_cached(
    status: int, extra: dict[str, str] | None, close: bool
) -> None:
    body = b'{"stored":true,"head":"u-1"}'
    checked = 0
    while checked < 2:  # built, then from the cache
        date = http_date()
        got = json_reply(status, body, extra, close=close)
        if http_date() != date:  # the second turned meanwhile: its Date is either
            continue
        checked += 1
        headers = [
            (b"date", date),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ]
        headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
        if close:
            headers.append((b"connection", b"close"))
        assert got == reply_head(status, headers) + body
