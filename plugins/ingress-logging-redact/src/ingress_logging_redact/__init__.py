"""ingress-logging plugin: mask secrets and personal data in entries before they are queued.

Inert until configured, so installing it changes nothing by itself:

* ``INGRESS_LOGGING_REDACT_KEYS`` - comma-separated key names (any depth,
  case-insensitive) whose values are replaced whole, e.g. ``password,api_key``.
* ``INGRESS_LOGGING_REDACT_PATTERNS`` - a JSON list of regexes; every match in
  every string value is replaced.
* ``INGRESS_LOGGING_REDACT_BUILTINS`` - built-in detectors, comma-separated:
  ``tokens`` (bearer tokens, common API-key shapes, JWTs, and the ingress
  token itself), ``emails``, ``cards`` (13-19 digit numbers that pass the
  Luhn check, as strings or integers), or ``all``.
* ``INGRESS_LOGGING_REDACT_MASK`` - the replacement text (default ``[REDACTED]``).

Settings are read per entry (parsed once per distinct value). A setting that
can't be parsed raises ``ConfigError``; the host then *drops* the entry and
counts it, rather than shipping it unredacted.
"""

from __future__ import annotations

from typing import Any

from ingress_logging.hookspecs import hookimpl

from ._redact import current_redactor

__all__ = ["ingress_prepare_entry"]


@hookimpl(trylast=True)
def ingress_prepare_entry(entry: dict[str, Any], record: object) -> dict[str, Any] | None:
    """Return a masked copy of ``entry``, or None when nothing matched (or not configured).

    ``trylast`` so it runs after enriching plugins and sees what they added.
    """
    redactor = current_redactor()
    if not redactor.active:
        return None
    return redactor.redact(entry)
