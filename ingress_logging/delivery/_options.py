"""The engine's constructor arguments, checked: types, ranges and conflicts."""

from __future__ import annotations

from ._types import OVERFLOW_POLICIES, OverflowPolicy

__all__ = ["check_conflicts", "check_numbers", "overflow_name"]


def overflow_name(value: object) -> OverflowPolicy:
    """The policy named by ``value``; spellings from config files are accepted
    (``"drop-oldest"``, ``"DROP_OLDEST"``, ``"drop oldest"``)."""
    if isinstance(value, str):
        name = value.strip().lower().replace("-", "_").replace(" ", "_")
        for policy in OVERFLOW_POLICIES:
            if name == policy:
                return policy
    raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {value!r}")


def check_numbers(**numbers: float) -> None:
    for name in ("max_queue_entries", "max_queue_bytes", "max_concurrency", "max_idle_sessions"):
        number = numbers[name]
        if isinstance(number, bool) or not isinstance(number, int):
            raise TypeError(f"{name} must be an int, not {type(number).__name__}")
    if numbers["max_queue_entries"] < 1 or numbers["max_queue_bytes"] < 1:
        raise ValueError("max_queue_entries and max_queue_bytes must be positive")
    if numbers["max_concurrency"] < 1:
        raise ValueError("max_concurrency must be at least 1")
    if numbers["max_idle_sessions"] < 0:
        raise ValueError("max_idle_sessions must not be negative")
    if numbers["block_timeout"] < 0 or numbers["close_timeout"] < 0:
        raise ValueError("block_timeout and close_timeout must not be negative")


def check_conflicts(
    *,
    host: object,
    host_settings: dict[str, object],
    spool: object,
    spool_dir: object,
    transport: object,
    client_settings: dict[str, object],
) -> None:
    """Arguments one of which would be silently ignored: a TypeError naming both."""
    if host is not None:
        given = [name for name, value in host_settings.items() if value is not None]
        if given:
            raise TypeError(f"pass either host= or {'=, '.join(given)}=, not both")
    if spool is not None and spool_dir is not None:
        raise TypeError("pass either spool= or spool_dir=, not both")
    if transport is not None:
        given = [name for name, value in client_settings.items() if value is not None]
        if given:
            raise TypeError(
                f"pass either transport= or the client's {'=, '.join(given)}=, not both"
                " (the transport factory builds its own client)"
            )
