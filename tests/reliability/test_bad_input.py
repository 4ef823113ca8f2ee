"""Bad input, property-based: nothing the app logs can crash, hang or lose a neighbour.

Each example logs three records into a fresh session through ``IngressHandler``
and one shared ``DeliveryEngine`` against the local server: a good neighbour,
then a hostile record, then another good neighbour. The hostile record draws
from: arbitrary ``extra`` values (nested, unserialisable, cyclic, bytes),
messages with lone surrogates, NULs and megabytes of text, ``%`` arguments
and exceptions whose ``__str__``/``__repr__`` raise, and hostile session ids.
Afterwards: ``logger.info`` raised nothing and returned promptly; both
neighbours are on the server, in order; the hostile record is either stored
(its message cut to the limit and flagged if it was huge) or counted as
refused - never silently lost. Examples: ``RELIABILITY_BAD_INPUT_EXAMPLES``
(default 100).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ingress_logging import IngressHandler, RetryPolicy
from ingress_logging.delivery import DeliveryEngine
from ingress_logging.entries import DEFAULT_LIMITS
from ingress_logging.server import IngressServer, run_server

EXAMPLES = int(os.environ.get("RELIABILITY_BAD_INPUT_EXAMPLES", "100"))
_ids = itertools.count()


class RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("__str__ raised")


class RaisingRepr(RaisingStr):
    """Made inside the test, not drawn: hypothesis must be able to print examples."""

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ raised")


class RaisingException(Exception):
    def __str__(self) -> str:
        raise ValueError("exception __str__ raised")


class Cycle:
    def __init__(self) -> None:
        self.me = self


def _cyclic() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text())
weird_leaf = st.one_of(
    json_leaf,
    st.binary(max_size=50),
    st.builds(RaisingStr),
    st.builds(Cycle),
    st.builds(_cyclic),
    st.just(object()),
    st.just(float("inf")),
    st.integers(min_value=2**64, max_value=2**70),
    st.sets(st.integers(), max_size=3),
)
extra_values = st.recursive(
    weird_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
nasty_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=20),
    st.text(alphabet=st.sampled_from(["\x00", "a", "\ud800", "é", "\U0001f600", "%", "\n"])),
    st.integers(1_000_000, 3_000_000).map(lambda n: "m" * n),
)
hostile_ids = st.one_of(
    st.sampled_from(
        ["", "../../etc/passwd", "a/b", "a%2Fb", "\x00", "x" * 10_000, " ", "..", "%00", "a?b#c"]
    ),
    st.text(max_size=300),
    st.integers(),
    st.none(),
)

hostile = st.one_of(
    st.fixed_dictionaries(
        {
            "kind": st.just("extra"),
            "extra": st.dictionaries(
                st.text(max_size=20).filter(
                    lambda k: (
                        k not in logging.LogRecord("x", 0, "", 0, "", None, None).__dict__
                        and k not in ("message", "asctime", "session_id")
                    )
                ),
                extra_values,
                max_size=5,
            ),
        }
    ),
    st.fixed_dictionaries({"kind": st.just("text"), "text": nasty_text}),
    st.fixed_dictionaries({"kind": st.just("args"), "args": st.tuples(extra_values)}),
    st.fixed_dictionaries({"kind": st.just("exception")}),
    st.fixed_dictionaries({"kind": st.just("session"), "sid": hostile_ids}),
)


@pytest.fixture(scope="module")
def setup(suite_token: str) -> Iterator[tuple[IngressServer, DeliveryEngine, logging.Logger]]:
    with run_server(token=suite_token) as server:
        engine = DeliveryEngine(
            base_api_url=server.base_url,
            token=suite_token,
            retry_policy=RetryPolicy(max_attempts=5, base_delay=0.001),
        )
        log = logging.getLogger("reliability.bad_input")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        handler = IngressHandler(engine=engine)
        log.addHandler(handler)
        try:
            yield server, engine, log
        finally:
            log.removeHandler(handler)
            engine.close(5)


def _emit_hostile(log: logging.Logger, sid: str, case: dict[str, Any]) -> None:
    kind = case["kind"]
    if kind == "extra":
        extra = {"session_id": sid, "unprintable": RaisingRepr(), **case["extra"]}
        log.info("hostile extra", extra=extra)
    elif kind == "text":
        log.info(case["text"], extra={"session_id": sid})
    elif kind == "args":
        log.info("hostile %s %r args", *case["args"], RaisingRepr(), extra={"session_id": sid})
    elif kind == "exception":
        try:
            raise RaisingException
        except RaisingException:
            log.exception("hostile exception", extra={"session_id": sid})
    else:
        log.info("hostile session id", extra={"session_id": case["sid"]})


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=hostile)
def test_hostile_record_never_crashes_hangs_or_loses_a_neighbour(
    setup: tuple[IngressServer, DeliveryEngine, logging.Logger], case: dict[str, Any]
) -> None:
    server, engine, log = setup
    big = case["kind"] == "text" and len(case["text"]) > DEFAULT_LIMITS.max_message_length
    event(f"kind={case['kind']}{' (megabytes)' if big else ''}")
    # pytest attaches its capture handlers to non-propagating loggers too, and
    # they *raise* on a record that cannot be formatted: keep only ours.
    for h in [h for h in log.handlers if not isinstance(h, IngressHandler)]:
        log.removeHandler(h)
    sid = f"bad-input-{next(_ids)}"
    handler = log.handlers[0]
    assert isinstance(handler, IngressHandler)
    before = engine.stats()
    drops_before = handler.dropped()
    refused_before = sum(drops_before.values())
    log.info("neighbour before", extra={"session_id": sid})
    started = time.monotonic()
    _emit_hostile(log, sid, case)  # must not raise
    took = time.monotonic() - started
    log.info("neighbour after", extra={"session_id": sid})
    result = engine.flush(30)
    assert result.pending == 0
    assert took < 5.0  # even megabytes of text are cut on the caller's thread

    messages = [e.get("content") for e in server.entries(sid)]
    content = [m for m in messages if isinstance(m, str)]
    assert content[0] == "neighbour before"
    assert content[-1] == "neighbour after"

    after = engine.stats()
    refused = sum(handler.dropped().values()) - refused_before
    stored = len(server.entries(sid))
    if case["kind"] == "text" and len(case["text"]) > DEFAULT_LIMITS.max_message_length:
        # Megabytes of text: stored, cut to the default limit, and flagged as cut.
        (big,) = [e for e in server.entries(sid)[1:-1] if "truncated" in e]
        assert len(big["content"]) <= DEFAULT_LIMITS.max_message_length
        assert "content" in big["truncated"]
    if case["kind"] == "session":
        # Stored in its own (valid) session, or refused and counted with a
        # reason that says why.
        assert refused + (after.submitted - before.submitted - 2) == 1
        if refused:
            grew = {k for k, v in handler.dropped().items() if v > drops_before.get(k, 0)}
            assert grew <= {"invalid_session_id", "no_session_id"}, grew
    else:
        engine_lost = (after.dropped - before.dropped) + (after.failed - before.failed)
        # The hostile record is in the session between its neighbours, or counted.
        assert stored - 2 + refused + engine_lost >= 1
