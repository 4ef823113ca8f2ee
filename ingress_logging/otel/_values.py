"""OpenTelemetry values -> JSON values, faithfully and without ever raising.

OpenTelemetry's ``AnyValue`` (log bodies, and log attributes since the SDK
accepts "extended" attributes) is ``str | bool | int | float | bytes |
Sequence[AnyValue] | Mapping[str, AnyValue] | None``. Span attributes are the
narrower ``AttributeValue`` (scalars and homogeneous sequences of scalars).
This module maps every one of them to a JSON value:

======================  ==================================================
OpenTelemetry value      JSON
======================  ==================================================
``None``                 ``null``
``bool``                 ``true`` / ``false`` (checked before ``int``)
``int`` (int64/uint64)   number
``int`` beyond 64 bits   decimal string, flagged ``int_out_of_range``
``float`` (finite)       number
``NaN``, ``±inf``        ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (the
                         proto3 JSON mapping OTLP/JSON uses)
``str``                  string (cut to the entry limits, see below)
``bytes``/``bytearray``  standard base64 string (what OTLP/JSON and the
                         SDK's own ``to_json`` use)
sequence (list, tuple)   array, element by element
mapping                  object; non-``str`` keys become ``str(key)``
anything else            short ``repr()`` string, flagged ``unserializable``
======================  ==================================================

What could not be kept exactly is written down the same way the stdlib
handler's entries do it (``ingress_logging.entries.Sanitizer``): cut strings
and lists in ``truncated`` (path -> original length), replacements in
``serializationIssues`` (``{"path", "reason"}``; reasons ``cycle``,
``depth``, ``unserializable``, ``int_out_of_range``, ``surrogates``). So a
pathological body costs one marker, never the record.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeAlias

from ..entries import DEFAULT_LIMITS, Limits, Sanitizer, safe_repr

__all__ = ["JSONValue", "ValueConverter"]

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1  # uint64 still fits orjson's integer range


class ValueConverter:
    """Converts the values of one entry; records what could not be kept exactly.

    One instance per entry; :meth:`annotate` writes the findings into it.
    """

    __slots__ = ("_sanitizer", "limits")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._sanitizer = Sanitizer(limits)

    @property
    def issue_count(self) -> int:
        """How many values were replaced (not counting plain truncations)."""
        return self._sanitizer.issue_count

    @property
    def truncated(self) -> dict[str, int]:
        """Path -> original length of every string or container that was cut."""
        return self._sanitizer.truncated

    def value(self, value: object, path: str, *, string_limit: int | None = None) -> JSONValue:
        """Map one OpenTelemetry ``AnyValue`` at ``path`` to JSON.

        ``string_limit`` overrides the limit for a top-level string (a log
        body is a message, so it gets ``max_message_length``).
        """
        if type(value) is str:
            return self._sanitizer.string(value, path, string_limit)
        return self._convert(value, path, 0, ())

    def attributes(
        self, attributes: Mapping[str, object] | None, path: str
    ) -> dict[str, JSONValue]:
        """Map an attribute mapping (``None`` -> ``{}``) to a JSON object."""
        if not attributes:
            return {}
        out = self._convert(attributes, path, 0, ())
        return out if isinstance(out, dict) else {}

    def annotate(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Add ``truncated`` / ``serializationIssues`` to ``entry`` when needed."""
        return self._sanitizer.annotate(entry)

    def _convert(self, value: object, path: str, depth: int, active: tuple[int, ...]) -> JSONValue:
        # Scalars first: they are by far the most common.
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return self._sanitizer.string(value, path)
        if isinstance(value, int):
            if _INT_MIN <= value <= _INT_MAX:
                return int(value)  # int() turns an IntEnum into a plain number
            self._sanitizer.flag(path, "int_out_of_range")
            return safe_repr(value, self.limits.max_string_length)
        if isinstance(value, float):
            if math.isfinite(value):
                return float(value)
            if math.isnan(value):
                return "NaN"
            return "Infinity" if value > 0 else "-Infinity"
        if isinstance(value, bytes | bytearray | memoryview):
            return base64.b64encode(bytes(value)).decode("ascii")
        if isinstance(value, Mapping | Sequence):
            return self._container(value, path, depth, active)
        self._sanitizer.flag(path, "unserializable")
        return safe_repr(value, self.limits.max_string_length)

    def _container(
        self,
        value: Mapping[Any, Any] | Sequence[Any],
        path: str,
        depth: int,
        active: tuple[int, ...],
    ) -> JSONValue:
        if id(value) in active:
            self._sanitizer.flag(path, "cycle")
            return "<cycle>"
        if depth >= self.limits.max_depth:
            self._sanitizer.flag(path, "depth")
            return "<nested too deep>"
        inner = (*active, id(value))
        max_items = self.limits.max_items
        try:
            if isinstance(value, Mapping):
                items = list(value.items())
                if len(items) > max_items:
                    self.truncated[path or "$"] = len(items)
                    del items[max_items:]
                return {
                    (name := k if type(k) is str else str(k)): self._convert(
                        v, f"{path}.{name[:64]}" if path else name[:64], depth + 1, inner
                    )
                    for k, v in items
                }
            elements = list(value)
            if len(elements) > max_items:
                self.truncated[path or "$"] = len(elements)
                del elements[max_items:]
            return [
                self._convert(v, f"{path}[{i}]", depth + 1, inner) for i, v in enumerate(elements)
            ]
        except Exception:  # a hostile __iter__ / __len__, or a key whose __str__ raises
            self._sanitizer.flag(path, "unserializable")
            return safe_repr(value, self.limits.max_string_length)
