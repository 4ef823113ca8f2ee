"""CappedBody: the one reply-body decision both clients use."""

from __future__ import annotations

import time

import httpx
import pytest

from ingress_logging.client._body import CappedBody


def _response(length: int | None = None) -> httpx.Response:
    headers = {} if length is None else {"content-length": str(length)}
    return httpx.Response(200, headers=headers)


def test_a_body_within_the_cap_is_joined():
    reader = CappedBody(_response(), 10, None)
    assert reader.feed(b"abc")
    assert reader.feed(b"defg")
    assert reader.body == b"abcdefg"


def test_a_declared_length_over_the_cap_is_refused_before_reading():
    reader = CappedBody(_response(11), 10, None)
    assert not reader.wants_more
    assert reader.body is None


def test_chunks_past_the_cap_stop_the_read():
    reader = CappedBody(_response(), 4, None)
    assert reader.feed(b"abcd")
    assert not reader.feed(b"e")
    assert not reader.wants_more
    assert reader.body is None


def test_a_chunk_after_the_deadline_is_a_read_timeout():
    reader = CappedBody(_response(), 10, time.monotonic() - 1)
    with pytest.raises(httpx.ReadTimeout):
        reader.feed(b"a")
