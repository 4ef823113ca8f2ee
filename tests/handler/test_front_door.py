"""IngressHandler's caller-thread logic: session resolution, recursion refusal, drops."""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ingress_logging
from ingress_logging import InvalidSessionIdError
from ingress_logging.diagnostics import DELIVERY_DROPPED
from ingress_logging.entries import STANDARD_ATTRS, dumps_entry
from ingress_logging.handler import IngressHandler


def make(
    engine: Any, **kwargs: Any
) -> tuple[IngressHandler, list[tuple[str, str, dict[str, Any]]]]:
    events: list[tuple[str, str, dict[str, Any]]] = []
    handler = IngressHandler(
        engine=engine,
        diagnostics=lambda lvl, ev, data: events.append((lvl, ev, dict(data))),
        **kwargs,
    )
    return handler, events


def test_session_precedence_extra_then_context_then_default(recording_engine, app_logger) -> None:
    handler, _ = make(recording_engine, session_id="default-s")
    app_logger.addHandler(handler)
    app_logger.info("a")
    with ingress_logging.session("ctx-s"):
        app_logger.info("b")
        app_logger.info("c", extra={"session_id": "extra-s"})
    app_logger.info("d", extra={"session_id": "extra-s"})
    assert recording_engine.sessions() == ["default-s", "ctx-s", "extra-s", "extra-s"]
    assert [e["content"] for e in recording_engine.entries()] == ["a", "b", "c", "d"]
    assert [e["sessionId"] for e in recording_engine.entries()] == recording_engine.sessions()


def test_no_session_is_a_counted_drop(recording_engine, app_logger) -> None:
    handler, events = make(recording_engine)
    app_logger.addHandler(handler)
    for _ in range(5):
        app_logger.warning("nowhere to go")
    assert recording_engine.submitted == []
    assert handler.dropped() == {"no_session_id": 5}
    # reported at the 1st, 2nd and 4th drop, not once per record
    assert [d["total"] for _, ev, d in events if ev == DELIVERY_DROPPED] == [1, 2, 4]
    # each report counts the drops since the one before
    assert [d["count"] for _, ev, d in events if ev == DELIVERY_DROPPED] == [1, 1, 2]
    assert {d["reason"] for _, _, d in events} == {"no_session_id"}


@pytest.mark.parametrize("bad", ["../up", "a/b", "", "x" * 300, 17, ["list"], "crlf\r\n"])
def test_invalid_session_id_in_extra_is_dropped_not_raised(
    recording_engine, app_logger, bad
) -> None:
    handler, events = make(recording_engine, session_id="fallback")
    app_logger.addHandler(handler)
    app_logger.info("bad", extra={"session_id": bad})
    app_logger.info("good")
    assert recording_engine.sessions() == ["fallback"]
    assert handler.dropped() == {"invalid_session_id": 1}
    assert events == [
        ("warn", DELIVERY_DROPPED, {"count": 1, "reason": "invalid_session_id", "total": 1})
    ]


def test_invalid_default_session_id_fails_at_construction(recording_engine) -> None:
    with pytest.raises(InvalidSessionIdError):
        IngressHandler(engine=recording_engine, session_id="../etc/passwd")


@pytest.mark.parametrize(
    "name", ["httpx", "httpcore", "httpcore.connection", "ingress_logging", "ingress_logging.x.y"]
)
def test_library_loggers_are_never_shipped(recording_engine, name) -> None:
    handler, _ = make(recording_engine, session_id="s")
    record = logging.LogRecord(name, logging.ERROR, __file__, 1, "msg", (), None)
    assert handler.handle(record) is False
    assert recording_engine.submitted == []


@pytest.mark.parametrize("name", ["httpxtra", "ingress_logging_app", "app.httpx", "root"])
def test_lookalike_loggers_are_shipped(recording_engine, name) -> None:
    handler, _ = make(recording_engine, session_id="s")
    assert handler.handle(logging.LogRecord(name, logging.INFO, __file__, 1, "m", (), None))
    assert recording_engine.sessions() == ["s"]


def test_extra_ignored_loggers(recording_engine) -> None:
    handler, _ = make(recording_engine, session_id="s", ignore_loggers=["noisy"])
    assert not handler.handle(logging.LogRecord("noisy.sub", logging.INFO, "", 1, "m", (), None))
    assert recording_engine.submitted == []


def test_records_from_worker_threads_are_never_shipped(recording_engine, app_logger) -> None:
    handler, _ = make(recording_engine, session_id="s")
    app_logger.addHandler(handler)

    def worker() -> None:
        recording_engine.worker_idents.add(threading.get_ident())
        app_logger.error("from the worker")

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    app_logger.error("from the app")
    assert [e["content"] for e in recording_engine.entries()] == ["from the app"]


def test_filters_still_apply(recording_engine, app_logger) -> None:
    handler, _ = make(recording_engine, session_id="s")
    handler.addFilter(lambda r: "secret" not in r.getMessage())
    handler.setLevel(logging.WARNING)
    app_logger.addHandler(handler)
    app_logger.info("too low")
    app_logger.warning("a secret")
    app_logger.warning("fine")
    assert [e["content"] for e in recording_engine.entries()] == ["fine"]


def test_emit_never_raises(recording_engine, app_logger) -> None:
    class Broken:
        def submit(self, *a: Any, **k: Any) -> bool:
            raise RuntimeError("engine exploded")

        def flush(self, timeout: float | None = None) -> None:
            raise RuntimeError("flush exploded")

        def is_worker_thread(self) -> bool:
            return False

    handler, _ = make(Broken(), session_id="s")
    app_logger.addHandler(handler)
    app_logger.info("still fine")
    handler.flush()
    assert handler.dropped() == {"handler_error": 2}


def test_mutable_args_are_formatted_before_emit_returns(recording_engine, app_logger) -> None:
    handler, _ = make(recording_engine, session_id="s")
    app_logger.addHandler(handler)
    state = {"n": 1}
    app_logger.info("state=%s", state)
    state["n"] = 2
    assert recording_engine.entries()[0]["content"] == "state={'n': 1}"


def test_formatter_and_limits(recording_engine, app_logger) -> None:
    handler, _ = make(recording_engine, session_id="s", max_message_length=8)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(message)s"))
    app_logger.addHandler(handler)
    app_logger.error("0123456789")
    entry = recording_engine.entries()[0]
    assert entry["content"] == "ERROR:01"
    assert entry["truncated"] == {"content": 16}


def test_flush_and_close(recording_engine) -> None:
    handler, _ = make(recording_engine, session_id="s", flush_timeout=1.5, close_timeout=2.5)
    handler.flush()
    handler.close()
    handler.close()  # harmless
    assert recording_engine.flushes == [1.5, 2.5]
    assert handler.last_flush_result is True


def test_flush_under_the_logging_module_lock_waits_in_short_slices(recording_engine) -> None:
    """dictConfig holds the module lock: flush waits a slice at a time (see
    test_end_to_end for what the slices deliver and when they give up)."""
    handler, _ = make(recording_engine, session_id="s", flush_timeout=30.0)
    logging._acquireLock()  # type: ignore[attr-defined]
    try:
        handler.flush()
    finally:
        logging._releaseLock()  # type: ignore[attr-defined]
    assert recording_engine.flushes == [0.5]  # done at once: nothing was pending


def test_repr_has_no_token() -> None:
    handler = IngressHandler(
        base_api_url="http://127.0.0.1:9", token="super-secret-token", session_id="s"
    )
    try:
        assert "super-secret-token" not in repr(handler)
        assert "super-secret-token" not in repr(vars(handler))
    finally:
        handler.close()


@pytest.mark.parametrize(
    "setting", [{"token": "t"}, {"url": "http://h/{session_id}"}, {"max_queue_entries": 5}]
)
def test_engine_and_engine_settings_are_exclusive(recording_engine, setting) -> None:
    with pytest.raises(TypeError, match="not both"):
        IngressHandler(engine=recording_engine, **setting)


def test_equal_settings_share_one_engine() -> None:
    kwargs = {"base_api_url": "http://127.0.0.1:9", "token": "t", "max_queue_entries": 77}
    first, second = IngressHandler(**kwargs), IngressHandler(**kwargs, session_id="other")
    third = IngressHandler(**{**kwargs, "max_queue_entries": 78})
    try:
        assert first.engine is second.engine
        assert third.engine is not first.engine
    finally:
        for handler in (first, second, third):
            handler.close()


def test_public_exports() -> None:
    assert ingress_logging.IngressHandler is IngressHandler
    assert ingress_logging.session is ingress_logging.entries.session


class _RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


_values = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.text(),
    st.binary(max_size=8),
    st.builds(object),
    st.builds(_RaisingStr),
    st.lists(st.text(max_size=3), max_size=3),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    msg=st.one_of(st.text(), st.builds(_RaisingStr), st.integers()),
    args=st.lists(_values, max_size=3).map(tuple),
    extra=st.dictionaries(
        st.text(min_size=1).filter(lambda k: k not in STANDARD_ATTRS),
        _values,
        max_size=4,
    ),
    session_id=st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["ok-1", "ok_2"])),
)
def test_emit_never_raises_and_every_record_is_accounted_for(
    recording_engine, msg, args, extra, session_id
) -> None:
    handler, _ = make(recording_engine, session_id="fallback")
    logger = logging.getLogger("tests.handler.hypothesis")
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 1, msg, args, None, extra=extra or None
    )
    if session_id is not None:
        record.session_id = session_id
    before = len(recording_engine.submitted)
    handler.handle(record)  # must not raise, whatever the record holds
    shipped = len(recording_engine.submitted) - before
    assert shipped + sum(handler.dropped().values()) == 1
    if shipped:
        entry = recording_engine.entries()[-1]
        orjson.loads(dumps_entry(entry))
        assert entry["sessionId"] == recording_engine.sessions()[-1]
    else:
        assert handler.dropped() == {"invalid_session_id": 1}


@pytest.mark.parametrize(
    "formatter", [logging.Formatter("%(levelname)s:%(message)s"), "%(levelname)s:%(message)s"]
)
def test_formatter_is_a_constructor_keyword(recording_engine, app_logger, formatter) -> None:
    """The issue lists ``formatter`` among the plain keyword arguments: passed to the
    constructor (not only through dictConfig's "formatter" key) it formats ``content``."""
    handler, _ = make(recording_engine, session_id="s", formatter=formatter)
    app_logger.addHandler(handler)
    app_logger.warning("hello %s", "there")
    assert recording_engine.entries()[0]["content"] == "WARNING:hello there"


def test_formatter_of_the_wrong_type_is_a_clear_error(recording_engine) -> None:
    with pytest.raises(TypeError, match=r"formatter must be a logging\.Formatter"):
        IngressHandler(engine=recording_engine, formatter=42)  # type: ignore[arg-type]


def test_one_name_per_setting_the_old_alias_names_the_right_one() -> None:
    handler = IngressHandler(
        base_api_url="http://127.0.0.1:9", token="t", session_id="s", overflow="drop_oldest"
    )
    try:
        assert "overflow='drop_oldest'" in repr(handler.engine)
    finally:
        handler.close()
    with pytest.raises(
        TypeError,
        match=r"IngressHandler\(\) got an unexpected keyword argument "
        r"'policy' \(did you mean 'overflow'\?\)",
    ):
        IngressHandler(base_api_url="http://127.0.0.1:9", token="t", policy="block")  # type: ignore[arg-type]


def test_a_misspelt_keyword_suggests_the_close_match() -> None:
    with pytest.raises(TypeError, match=r"'sesion_id' \(did you mean 'session_id'\?\)"):
        IngressHandler(base_api_url="http://127.0.0.1:9", sesion_id="s")  # type: ignore[arg-type]


def test_a_misspelt_dictconfig_keyword_names_the_handler_and_the_close_match() -> None:
    import logging.config

    config = {
        "version": 1,
        "handlers": {
            "ingress": {
                "()": "ingress_logging.IngressHandler",
                "base_api_url": "http://127.0.0.1:9",
                "sesion_id": "s",
            }
        },
    }
    with pytest.raises(ValueError, match="Unable to configure handler 'ingress'") as info:
        logging.config.dictConfig(config)
    cause = info.value.__cause__
    assert isinstance(cause, TypeError)
    assert "IngressHandler() got an unexpected keyword argument 'sesion_id'" in str(cause)
    assert "did you mean 'session_id'?" in str(cause)


def test_no_url_anywhere_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from ingress_logging.errors import ConfigError

    monkeypatch.delenv("INGRESS_LOGGING_URL", raising=False)
    monkeypatch.delenv("INGRESS_LOGGING_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"INGRESS_LOGGING_URL.*INGRESS_LOGGING_BASE_URL"):
        IngressHandler(token="dev-token", session_id="s")
