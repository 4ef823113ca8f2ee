"""Configuration (from the environment) and the redaction walk.

Kept apart from ``__init__`` so that the plugin module holds only hook
implementations, and so the walk can be tested without a plugin manager.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ingress_logging.errors import ConfigError

__all__ = [
    "BUILTINS",
    "ENV_BUILTINS",
    "ENV_KEYS",
    "ENV_MASK",
    "ENV_PATTERNS",
    "PROTECTED_KEYS",
    "Redactor",
    "current_redactor",
    "luhn_valid",
]

ENV_KEYS: Final = "INGRESS_LOGGING_REDACT_KEYS"
ENV_PATTERNS: Final = "INGRESS_LOGGING_REDACT_PATTERNS"
ENV_BUILTINS: Final = "INGRESS_LOGGING_REDACT_BUILTINS"
ENV_MASK: Final = "INGRESS_LOGGING_REDACT_MASK"
DEFAULT_MASK: Final = "[REDACTED]"

#: Top-level fields that chain entries together: never rewritten, or the
#: session's chain (uuid -> parentUuid) would break.
PROTECTED_KEYS: Final = frozenset({"uuid", "parentUuid", "sessionId", "type", "timestamp"})

_TOKEN_PATTERNS: Final = (
    r"\bBearer\s+[A-Za-z0-9._~+/=-]{8,}",
    r"\bsk-ant-[A-Za-z0-9_-]{10,}",
    r"\bsk-[A-Za-z0-9_-]{20,}",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"\bxox[abeprs]-[A-Za-z0-9-]{10,}",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
)
# The lookbehind anchors a match at the start of a run, keeping the scan linear.
_EMAIL: Final = (
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
# 13 to 19 digits, optionally grouped by single spaces or dashes.
_CARD: Final = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")

#: The detectors ``INGRESS_LOGGING_REDACT_BUILTINS`` can name.
BUILTINS: Final = frozenset({"tokens", "emails", "cards"})


def luhn_valid(digits: str) -> bool:
    """True if ``digits`` (digits only) passes the Luhn check card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _is_card(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


@dataclass(frozen=True)
class Redactor:
    """What to mask and with what; an empty one is inert."""

    keys: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()
    cards: bool = False
    mask: str = DEFAULT_MASK
    literals: tuple[str, ...] = field(default=())

    @property
    def active(self) -> bool:
        return bool(self.keys or self.patterns or self.cards or self.literals)

    def redact(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """A redacted copy of ``entry``, or None if nothing needed masking."""
        changed = [False]
        out: dict[str, Any] = {}
        for key, value in entry.items():
            if key in PROTECTED_KEYS:
                out[key] = value
            else:
                out[key] = self._value(key, value, changed)
        return out if changed[0] else None

    def _value(self, key: object, value: Any, changed: list[bool]) -> Any:
        if isinstance(key, str) and key.lower() in self.keys and value is not None:
            changed[0] = True
            return self.mask
        if isinstance(value, str):
            new = self._text(value)
            if new != value:
                changed[0] = True
            return new
        if isinstance(value, dict):
            return {k: self._value(k, v, changed) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._value(None, v, changed) for v in value]
        if (
            self.cards
            and isinstance(value, int)
            and not isinstance(value, bool)
            and _is_card(str(abs(value)))
        ):
            changed[0] = True
            return self.mask
        return value

    def _text(self, text: str) -> str:
        for literal in self.literals:
            if literal in text:
                text = text.replace(literal, self.mask)
        for pattern in self.patterns:
            text = pattern.sub(self.mask, text)
        if self.cards:
            text = _CARD.sub(self._card_sub, text)
        return text

    def _card_sub(self, match: re.Match[str]) -> str:
        return self.mask if _is_card(match.group(0)) else match.group(0)


def _parse(keys: str, patterns: str, builtins: str, mask: str, token: str) -> Redactor:
    key_set = frozenset(k.strip().lower() for k in keys.split(",") if k.strip())
    protected = sorted(key_set & {k.lower() for k in PROTECTED_KEYS})
    if protected:
        raise ConfigError(f"{ENV_KEYS} may not name protocol fields: {', '.join(protected)}")
    sources: list[str] = []
    if patterns.strip():
        try:
            loaded = json.loads(patterns)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{ENV_PATTERNS} must be a JSON list of regexes: {exc}") from None
        if not isinstance(loaded, list) or not all(isinstance(p, str) for p in loaded):
            raise ConfigError(f"{ENV_PATTERNS} must be a JSON list of strings")
        sources.extend(loaded)
    chosen = {b.strip().lower() for b in builtins.split(",") if b.strip()}
    if "all" in chosen:
        chosen = set(BUILTINS)
    unknown = sorted(chosen - BUILTINS)
    if unknown:
        raise ConfigError(
            f"{ENV_BUILTINS}: unknown detector(s) {', '.join(unknown)}; "
            f"choose from {', '.join(sorted(BUILTINS))} or 'all'"
        )
    if "tokens" in chosen:
        sources.extend(_TOKEN_PATTERNS)
    if "emails" in chosen:
        sources.append(_EMAIL)
    compiled: list[re.Pattern[str]] = []
    for i, source in enumerate(sources):
        try:
            compiled.append(re.compile(source))
        except re.error as exc:
            # Say which one, not what it is: a pattern may embed a secret.
            raise ConfigError(f"{ENV_PATTERNS}: pattern #{i} does not compile: {exc.msg}") from None
    # With "tokens", the ingress token itself is masked wherever it appears.
    literals = (token,) if "tokens" in chosen and len(token) >= 8 else ()
    return Redactor(
        keys=key_set,
        patterns=tuple(compiled),
        cards="cards" in chosen,
        mask=mask or DEFAULT_MASK,
        literals=literals,
    )


_EnvKey = tuple[str, str, str, str, str]
_cache: dict[_EnvKey, Redactor] = {}
_cache_lock = threading.Lock()


def current_redactor(getenv: Callable[[str, str], str] = os.environ.get) -> Redactor:
    """The redactor for the current environment (parsed once per distinct setting)."""
    env_key: _EnvKey = (
        getenv(ENV_KEYS, ""),
        getenv(ENV_PATTERNS, ""),
        getenv(ENV_BUILTINS, ""),
        getenv(ENV_MASK, ""),
        getenv("INGRESS_LOGGING_TOKEN", "").strip(),
    )
    with _cache_lock:
        redactor = _cache.get(env_key)
        if redactor is None:
            redactor = _parse(*env_key)
            _cache.clear()  # settings rarely change; keep one
            _cache[env_key] = redactor
    return redactor
