"""dumps_entry / Sanitizer: anything becomes JSON, the rest survives, repairs are flagged."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingress_logging.entries import ISSUES_KEY, TRUNCATED_KEY, Limits, Sanitizer, dumps_entry


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr fails")


class RaisingStrException(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str fails")


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    payload: Any = None


def issues(entry: dict[str, Any]) -> dict[str, str]:
    return {i["path"]: i["reason"] for i in entry.get(ISSUES_KEY, [])}


def roundtrip(entry: dict[str, Any]) -> dict[str, Any]:
    data = dumps_entry(entry)
    assert isinstance(data, bytes)
    result = orjson.loads(data)
    assert isinstance(result, dict)
    return result


def test_clean_entry_is_plain_orjson() -> None:
    entry = {"uuid": str(uuid.uuid4()), "content": "héllo\x00", "n": 2**63, "f": 1.5}
    assert dumps_entry(entry) == orjson.dumps(entry)


def test_unserialisable_values_are_replaced_and_flagged_rest_kept() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    entry = {
        "uuid": "u1",
        "content": "keep me",
        "obj": object(),
        "bad_repr": RaisingRepr(),
        "exc": RaisingStrException("x"),
        "cycle": cycle,
        "bytes": b"\x00\xffabc",
        "surrogate": "a\udc80b",
        "big": 2**80,
        "keys": {(1, 2): "tuple key", 3: "int key"},
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "color": Color.RED,
        "point": Point(1, object()),
        "set": {7},
    }
    out = roundtrip(entry)
    assert out["uuid"] == "u1"
    assert out["content"] == "keep me"
    assert out["obj"].startswith("<object object at")
    assert out["bad_repr"] == "<unrepresentable RaisingRepr>"
    assert out["exc"] == "RaisingStrException('x')"
    assert out["cycle"] == [1, "<cycle>"]
    assert out["bytes"] == repr(b"\x00\xffabc")
    assert out["surrogate"] == "a\\udc80b"
    assert out["big"] == str(2**80)
    assert out["keys"] == {"(1, 2)": "tuple key", "3": "int key"}
    assert out["when"] == "2026-01-02T03:04:05+00:00"
    assert out["color"] == "red"
    assert out["point"]["x"] == 1
    assert out["point"]["payload"].startswith("<object object")
    assert out["set"] == [7]
    assert issues(out) == {
        "obj": "unserializable",
        "bad_repr": "unserializable",
        "exc": "unserializable",
        "cycle[1]": "cycle",
        "bytes": "bytes",
        "surrogate": "surrogates",
        "big": "int_out_of_range",
        "keys.(1, 2)": "non_str_key",
        "point.payload": "unserializable",
    }


def test_existing_flags_are_merged_not_lost() -> None:
    entry = {ISSUES_KEY: [{"path": "content", "reason": "format_error"}], "x": object()}
    out = roundtrip(entry)
    assert issues(out) == {"content": "format_error", "x": "unserializable"}


def test_deep_nesting_is_cut_at_max_depth() -> None:
    deep: Any = "leaf"
    for _ in range(400):  # beyond orjson's own recursion limit
        deep = [deep]
    entry = {"deep": deep, "other": object()}
    out = roundtrip(entry)
    assert "deep" in out
    assert "depth" in issues(out).values()


def test_non_finite_floats_become_strings_like_otlp_json() -> None:
    s = Sanitizer()
    nan, inf = float("nan"), float("inf")
    assert s.value([nan, inf, -inf, 1.5], "x") == ["NaN", "Infinity", "-Infinity", 1.5]
    assert s.issues == []


def test_sanitizer_limits_strings_and_items() -> None:
    s = Sanitizer(Limits(max_string_length=10, max_items=3))
    value = s.value({"text": "x" * 50, "items": list(range(10))}, "extra")
    assert value == {"text": "x" * 10, "items": [0, 1, 2]}
    assert s.truncated == {"extra.text": 50, "extra.items": 10}


def test_issue_list_is_capped_with_a_count() -> None:
    entry = {f"k{i}": object() for i in range(100)}
    out = roundtrip(entry)
    listed = out[ISSUES_KEY]
    assert len(listed) == 33
    assert listed[-1] == {"path": "*", "reason": "more_issues", "count": 68}


def test_mutation_during_walk_is_contained() -> None:
    class Shifty(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("dictionary changed size during iteration")

    out = roundtrip({"a": Shifty(x=1), "b": object()})
    assert issues(out)["a"] == "unserializable"
    assert "b" in out


@pytest.mark.parametrize("limit", [0, -1, True, 1.5])
def test_limits_validate(limit: Any) -> None:
    with pytest.raises(ValueError):
        Limits(max_items=limit)


def test_truncated_map_merges() -> None:
    s = Sanitizer(Limits(max_string_length=2))
    entry = {TRUNCATED_KEY: {"content": 99}}
    s.string("abcd", "extra.x")
    assert s.annotate(entry)[TRUNCATED_KEY] == {"content": 99, "extra.x": 4}


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),  # includes lone surrogates and NULs
    st.binary(max_size=20),
    st.builds(object),
    st.builds(RaisingRepr),
    st.datetimes(),
    st.uuids(),
)
anything = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(st.one_of(st.text(), st.integers(), st.none()), children, max_size=5),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(value=anything)
def test_any_value_serialises_and_keeps_siblings(value: Any) -> None:
    out = roundtrip({"uuid": "fixed", "value": value, "content": "sibling"})
    assert out["uuid"] == "fixed"
    assert out["content"] == "sibling"
    assert "value" in out


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1))
def test_any_text_roundtrips_or_is_flagged(text: str) -> None:
    out = roundtrip({"content": text})
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        assert issues(out) == {"content": "surrogates"}
        assert out["content"] == text.encode("utf-8", "backslashreplace").decode()
    else:
        assert out["content"] == text
        assert ISSUES_KEY not in out
