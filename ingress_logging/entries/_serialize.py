"""Safe JSON for transcript entries: orjson fast, and never an exception.

An entry is built from whatever an application put into a log record:
arbitrary objects, cycles, bytes, megabyte strings, strings holding lone
surrogates (file names decoded with ``surrogateescape``), integers beyond 64
bits, objects whose ``__repr__`` raises. None of that may cost the rest of
the record, and none of it may raise out of a logging call.

:class:`Sanitizer` walks a value and returns a copy made of JSON primitives
only. Whatever it had to change is written down: a string or list cut to its
limit goes into the entry's ``truncated`` map (path -> original length), any
other replacement into ``serializationIssues`` (a list of ``{"path",
"reason"}``). :func:`dumps_entry` tries plain ``orjson.dumps`` first and only
walks the entry when that fails, so well-formed entries pay nothing extra.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "DEFAULT_LIMITS",
    "ISSUES_KEY",
    "MAX_REPORTED_ISSUES",
    "TRUNCATED_KEY",
    "Limits",
    "Sanitizer",
    "dumps_entry",
    "safe_repr",
]

#: Entry key listing the values that had to be replaced to serialise the entry.
ISSUES_KEY: Final = "serializationIssues"
#: Entry key mapping the path of each cut string/list to its original length.
TRUNCATED_KEY: Final = "truncated"
#: At most this many issues are listed; one more item then counts the rest.
MAX_REPORTED_ISSUES: Final = 32

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1
_MAX_PATH_KEY: Final = 64


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits applied while an entry is made JSON-safe.

    Attributes:
        max_message_length: characters kept of the message, the exception text
            and the stack (default 64 KiB).
        max_string_length: characters kept of any other string value.
        max_items: elements kept of any list, tuple, set or mapping.
        max_depth: nesting depth of containers; deeper values are replaced.
    """

    max_message_length: int = 64 * 1024
    max_string_length: int = 16 * 1024
    max_items: int = 1000
    max_depth: int = 32

    def __post_init__(self) -> None:
        for name in ("max_message_length", "max_string_length", "max_items", "max_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")


DEFAULT_LIMITS: Final = Limits()


def _fix_surrogates(text: str) -> str | None:
    """None when ``text`` encodes as UTF-8; else a copy with lone surrogates escaped."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return None


def _non_finite(value: float) -> str:
    """NaN and infinities as the proto3/OTLP JSON strings (orjson would write null)."""
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def safe_repr(value: object, limit: int = 200) -> str:
    """``repr(value)`` cut to ``limit`` characters; never raises, always valid UTF-8."""
    try:
        text = repr(value)
        if not isinstance(text, str):  # a __repr__ returning a str subclass is fine
            raise TypeError("__repr__ returned a non-string")
        text = str.__str__(text)
    except Exception:
        try:
            name = type(value).__qualname__
        except Exception:
            name = "object"
        return f"<unrepresentable {name[:100]}>"
    if len(text) > limit:
        text = text[:limit] + "..."
    fixed = _fix_surrogates(text)
    return text if fixed is None else fixed


class Sanitizer:
    """Turns arbitrary values into JSON primitives, recording what it changed.

    One instance serves one entry: it accumulates the issues and truncations
    found, and :meth:`annotate` writes them into the entry at the end.
    """

    __slots__ = ("_active", "issue_count", "issues", "limits", "truncated")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.issues: list[dict[str, Any]] = []
        self.issue_count = 0
        self.truncated: dict[str, int] = {}
        self._active: set[int] = set()

    def flag(self, path: str, reason: str) -> None:
        """Record that the value at ``path`` was replaced, for ``reason``."""
        self.issue_count += 1
        if len(self.issues) < MAX_REPORTED_ISSUES:
            self.issues.append({"path": path or "$", "reason": reason})

    def string(self, text: str, path: str, limit: int | None = None) -> str:
        """A str value cut to ``limit`` (default: max_string_length), surrogates escaped."""
        if type(text) is not str:
            text = str.__str__(text)
        limit = self.limits.max_string_length if limit is None else limit
        if len(text) > limit:
            self.truncated[path or "$"] = len(text)
            text = text[:limit]
        fixed = _fix_surrogates(text)
        if fixed is None:
            return text
        self.flag(path, "surrogates")
        return fixed

    def value(self, value: Any, path: str, depth: int = 0) -> Any:
        """A JSON-safe copy of ``value`` (primitives are returned unchanged)."""
        kind = type(value)
        if kind is str:
            return self.string(value, path)
        if value is None or kind is bool:
            return value
        if kind is float:
            return value if value - value == 0.0 else _non_finite(value)
        if kind is int:
            return value if _INT_MIN <= value <= _INT_MAX else self._big_int(value, path)
        try:
            return self._complex(value, path, depth)
        except Exception:  # a hostile __iter__, __len__, property, concurrent mutation...
            self.flag(path, "unserializable")
            return safe_repr(value, self.limits.max_string_length)

    def annotate(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Write the recorded truncations and issues into ``entry`` (merging old ones)."""
        if self.truncated:
            previous = entry.get(TRUNCATED_KEY)
            merged = dict(previous) if isinstance(previous, dict) else {}
            merged.update(self.truncated)
            entry[TRUNCATED_KEY] = merged
        if self.issue_count:
            previous_issues = entry.get(ISSUES_KEY)
            issues = list(previous_issues) if isinstance(previous_issues, list) else []
            issues.extend(self.issues)
            hidden = self.issue_count - len(self.issues)
            if hidden > 0:
                issues.append({"path": "*", "reason": "more_issues", "count": hidden})
            entry[ISSUES_KEY] = issues
        return entry

    # -- the slow paths ---------------------------------------------------

    def _big_int(self, value: int, path: str) -> str:
        self.flag(path, "int_out_of_range")
        try:
            return str(value)
        except ValueError:  # beyond sys.get_int_max_str_digits()
            return f"<int of {value.bit_length()} bits>"

    def _complex(self, value: Any, path: str, depth: int) -> Any:
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, str):
            return self.string(str.__str__(value), path)
        if isinstance(value, int):
            return self.value(int.__int__(value), path, depth)
        if isinstance(value, float):
            return self.value(float.__float__(value), path, depth)
        if isinstance(value, Mapping | list | tuple | set | frozenset):
            return self._container(value, path, depth)
        if isinstance(value, bytes | bytearray | memoryview):
            self.flag(path, "bytes")
            limit = self.limits.max_string_length
            return safe_repr(bytes(value)[:limit], limit)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            return self._container(fields, path, depth, identity=id(value))
        if isinstance(value, enum.Enum):
            return self.value(value.value, path, depth + 1)
        try:  # datetime, date, time, UUID and friends: orjson's own representation
            return orjson.loads(orjson.dumps(value))
        except TypeError:
            pass
        self.flag(path, "unserializable")
        return safe_repr(value, self.limits.max_string_length)

    def _container(
        self, value: Any, path: str, depth: int, identity: int | None = None
    ) -> dict[str, Any] | list[Any] | str:
        key = id(value) if identity is None else identity
        if key in self._active:
            self.flag(path, "cycle")
            return "<cycle>"
        if depth >= self.limits.max_depth:
            self.flag(path, "depth")
            return f"<{type(value).__qualname__[:100]} nested too deep>"
        max_items = self.limits.max_items
        self._active.add(key)
        try:
            if isinstance(value, Mapping):
                items = list(value.items())
                if len(items) > max_items:
                    self.truncated[path or "$"] = len(items)
                    del items[max_items:]
                out: dict[str, Any] = {}
                for k, v in items:
                    name = self._key(k, path)
                    out[name] = self.value(v, _join(path, name[:_MAX_PATH_KEY]), depth + 1)
                return out
            elements = list(value)
            if len(elements) > max_items:
                self.truncated[path or "$"] = len(elements)
                del elements[max_items:]
            return [self.value(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(elements)]
        finally:
            self._active.discard(key)

    def _key(self, key: Any, path: str) -> str:
        if type(key) is str:
            fixed = _fix_surrogates(key)
            if fixed is None:
                return key
            self.flag(_join(path, fixed[:_MAX_PATH_KEY]), "surrogates")
            return fixed
        if key is None:
            return "null"
        if isinstance(key, bool):
            return "true" if key else "false"
        if isinstance(key, int):
            return self._big_int(key, path) if not _INT_MIN <= key <= _INT_MAX else str(int(key))
        if isinstance(key, float):
            return repr(float(key))
        if isinstance(key, str):
            return self._key(str.__str__(key), path)
        text = safe_repr(key, _MAX_PATH_KEY)
        self.flag(_join(path, text), "non_str_key")
        return text


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def dumps_entry(entry: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Serialise an entry to JSON bytes; never raises.

    Plain ``orjson.dumps`` first. If that refuses the entry, the entry is
    walked with a :class:`Sanitizer` (which cuts strings to ``limits``,
    replaces what cannot be serialised by a short ``repr`` and flags it), and
    the safe copy is serialised. Values that serialise as they are are never
    cut here: size limits are the producer's job (see ``record_to_entry``).
    """
    try:
        return orjson.dumps(entry)
    except Exception:
        pass
    sanitizer = Sanitizer(limits)
    try:
        safe = sanitizer.value(entry, "")
        if not isinstance(safe, dict):
            safe = {"value": safe}
        return orjson.dumps(sanitizer.annotate(safe))
    except Exception:
        # Unreachable by design; if it ever happens, ship a marker, not nothing.
        fallback = {
            key: entry[key]
            for key in ("uuid", "parentUuid", "sessionId", "timestamp", "type")
            if isinstance(entry, Mapping) and type(entry.get(key)) is str
        }
        fallback[ISSUES_KEY] = [{"path": "$", "reason": "unserializable"}]
        try:
            return orjson.dumps(fallback)
        except Exception:
            return b'{"serializationIssues":[{"path":"$","reason":"unserializable"}]}'
