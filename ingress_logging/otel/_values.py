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
``int`` beyond 64 bits   decimal string (no JSON parser keeps it exact)
``float`` (finite)       number
``NaN``, ``±inf``        ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (the
                         proto3 JSON mapping OTLP/JSON uses)
``str``                  string
``bytes``/``bytearray``  standard base64 string (what OTLP/JSON and the
                         SDK's own ``to_json`` use)
sequence (list, tuple)   array, element by element
mapping                  object; non-``str`` keys become ``str(key)``
anything else            ``repr()`` string, counted as *lossy*
======================  ==================================================

Cycles and nesting deeper than :data:`MAX_DEPTH` become the strings
``"<cycle>"`` / ``"<max depth>"`` and are counted as lossy too, so a
pathological body costs one marker, never the record.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from typing import Final, TypeAlias

__all__ = ["MAX_DEPTH", "JSONValue", "ValueConverter"]

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None

#: Deepest nesting of maps/lists kept; deeper values become ``"<max depth>"``.
MAX_DEPTH: Final = 32

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1  # uint64 still fits orjson's integer range


class ValueConverter:
    """Converts values for one entry and counts what could not be kept exactly.

    One instance per entry: ``lossy`` then says whether the entry should be
    flagged. Not thread-safe (it does not need to be: it lives for one call).
    """

    __slots__ = ("lossy",)

    def __init__(self) -> None:
        self.lossy = 0

    def value(self, value: object) -> JSONValue:
        """Map one OpenTelemetry ``AnyValue`` to JSON."""
        return self._convert(value, 0, ())

    def attributes(self, attributes: Mapping[str, object] | None) -> dict[str, JSONValue]:
        """Map an attribute mapping (``None`` -> ``{}``) to a JSON object."""
        if not attributes:
            return {}
        return {str(k): self._convert(v, 1, ()) for k, v in attributes.items()}

    def _convert(self, value: object, depth: int, path: tuple[int, ...]) -> JSONValue:
        # Scalars first: they are by far the most common.
        if value is None or isinstance(value, str | bool):
            return value
        if isinstance(value, int):
            if _INT_MIN <= value <= _INT_MAX:
                return int(value)  # int() turns an IntEnum into a plain number
            return str(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            if math.isnan(value):
                return "NaN"
            return "Infinity" if value > 0 else "-Infinity"
        if isinstance(value, bytes | bytearray | memoryview):
            return base64.b64encode(bytes(value)).decode("ascii")
        if isinstance(value, Mapping | Sequence):
            if depth >= MAX_DEPTH:
                self.lossy += 1
                return "<max depth>"
            if id(value) in path:
                self.lossy += 1
                return "<cycle>"
            inner = (*path, id(value))
            if isinstance(value, Mapping):
                return {str(k): self._convert(v, depth + 1, inner) for k, v in value.items()}
            return [self._convert(v, depth + 1, inner) for v in value]
        self.lossy += 1
        try:
            return repr(value)
        except Exception:
            return f"<unrepresentable {type(value).__name__}>"
