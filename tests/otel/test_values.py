"""Every OpenTelemetry value type maps to JSON faithfully (ValueConverter)."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingress_logging.entries import Limits
from ingress_logging.otel._values import ValueConverter

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary()
)
any_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _matches(original: object, converted: object) -> bool:
    """Independent check: could ``converted`` have come from ``original``?"""
    if original is None or isinstance(original, str):
        return converted == original and type(converted) is type(original)
    if isinstance(original, bool):
        return converted is original
    if isinstance(original, int):
        return type(converted) is int and converted == original
    if isinstance(original, float):
        if math.isnan(original):
            return converted == "NaN"
        if math.isinf(original):
            return converted == ("Infinity" if original > 0 else "-Infinity")
        return type(converted) is float and converted == original
    if isinstance(original, bytes):
        return isinstance(converted, str) and base64.b64decode(converted) == original
    if isinstance(original, Mapping):
        return (
            isinstance(converted, dict)
            and list(converted) == [str(k) for k in original]
            and all(_matches(original[k], converted[str(k)]) for k in original)
        )
    if isinstance(original, Sequence):
        return (
            isinstance(converted, list)
            and len(converted) == len(original)
            and all(_matches(o, c) for o, c in zip(original, converted, strict=True))
        )
    raise AssertionError(f"unexpected generated type {type(original)}")


@given(any_values)
def test_every_anyvalue_maps_faithfully_and_serialises(value: object) -> None:
    conv = ValueConverter()
    out = conv.value(value, "body")
    assert _matches(value, out)
    assert conv.issue_count == 0
    assert conv.annotate({}) == {}
    # orjson must accept it as is, and the JSON must read back to the same value.
    assert orjson.loads(orjson.dumps(out)) == out


@given(st.dictionaries(st.text(), scalars | st.lists(scalars, max_size=3).map(tuple)))
def test_attribute_mappings(attrs: dict[str, object]) -> None:
    out = ValueConverter().attributes(attrs, "attributes")
    assert _matches(attrs, out)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (0, 0),
        (-(2**63), -(2**63)),
        (2**64 - 1, 2**64 - 1),
        (1.5, 1.5),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (b"\x00\xff", "AP8="),
        (bytearray(b"ab"), "YWI="),
        ((1, "a", None), [1, "a", None]),
        ({1: "x"}, {"1": "x"}),
        ({"a": {"b": [b"c"]}}, {"a": {"b": ["Yw=="]}}),
    ],
)
def test_examples(value: object, expected: object) -> None:
    conv = ValueConverter()
    assert conv.value(value, "v") == expected
    assert conv.issue_count == 0


def test_bool_is_not_turned_into_int() -> None:
    assert ValueConverter().value([True, 1], "v") == [True, 1]
    assert type(ValueConverter().value(True, "v")) is bool


def test_none_attributes_become_empty_object() -> None:
    assert ValueConverter().attributes(None, "attributes") == {}


def test_int_beyond_64_bits_becomes_a_decimal_string_and_is_flagged() -> None:
    conv = ValueConverter()
    assert conv.value({"big": 2**64, "small": -(2**63) - 1}, "body") == {
        "big": str(2**64),
        "small": str(-(2**63) - 1),
    }
    assert conv.annotate({})["serializationIssues"] == [
        {"path": "body.big", "reason": "int_out_of_range"},
        {"path": "body.small", "reason": "int_out_of_range"},
    ]


def test_cycle_becomes_marker_and_is_flagged() -> None:
    cyclic: list[object] = [1]
    cyclic.append(cyclic)
    conv = ValueConverter()
    assert conv.value(cyclic, "body") == [1, "<cycle>"]
    assert conv.annotate({}) == {"serializationIssues": [{"path": "body[1]", "reason": "cycle"}]}


def test_shared_non_cyclic_value_is_kept_twice() -> None:
    shared = [1, 2]
    conv = ValueConverter()
    assert conv.value({"a": shared, "b": shared}, "body") == {"a": [1, 2], "b": [1, 2]}
    assert conv.issue_count == 0


def test_deep_nesting_is_cut_at_max_depth() -> None:
    deep: object = "leaf"
    for _ in range(10):
        deep = [deep]
    conv = ValueConverter(Limits(max_depth=4))
    out = conv.value(deep, "body")
    depth = 0
    while isinstance(out, list):
        out = out[0]
        depth += 1
    assert depth == 4
    assert out == "<nested too deep>"
    assert conv.annotate({})["serializationIssues"][0]["reason"] == "depth"


def test_long_strings_and_lists_are_cut_and_recorded() -> None:
    conv = ValueConverter(Limits(max_string_length=5, max_items=3, max_message_length=8))
    assert conv.value("x" * 20, "body", string_limit=8) == "x" * 8
    assert conv.attributes({"s": "y" * 9, "l": list(range(10))}, "attributes") == {
        "s": "yyyyy",
        "l": [0, 1, 2],
    }
    assert conv.annotate({}) == {"truncated": {"body": 20, "attributes.s": 9, "attributes.l": 10}}


def test_lone_surrogates_are_escaped_and_flagged() -> None:
    conv = ValueConverter()
    out = conv.value("bad\udcff", "body")
    assert isinstance(out, str)
    out.encode("utf-8")  # now encodable
    assert conv.annotate({})["serializationIssues"] == [{"path": "body", "reason": "surrogates"}]


def test_unknown_type_becomes_repr_and_is_flagged() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "Thing()"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    conv = ValueConverter()
    out = conv.value({"t": Thing(), "b": Broken()}, "body")
    assert isinstance(out, dict)
    assert out["t"] == "Thing()"
    assert isinstance(out["b"], str)
    assert "Broken" in out["b"]
    assert conv.annotate({})["serializationIssues"] == [
        {"path": "body.t", "reason": "unserializable"},
        {"path": "body.b", "reason": "unserializable"},
    ]
