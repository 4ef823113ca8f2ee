"""What every front door (the logging handler, the OpenTelemetry exporters) shares.

One place for the facts both need, so they cannot drift apart: the loggers
never shipped, the front-door drop reasons, the bytes charged per entry, the
default diagnostics sink, the engine settings a front door passes on (typed,
so a misspelt one is an error for mypy and at run time) and how the shared
engine is obtained. It lives
outside ``delivery`` because importing that package loads httpx, and a front
door only does that once it builds its shared engine.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final, Protocol

from .diagnostics import DiagnosticSink, logger_sink
from .entries import ENTRY_OVERHEAD

if TYPE_CHECKING:  # importing delivery loads httpx: only for the type checker
    import httpx

    from .delivery import FlushResult
    from .protocol import RetryPolicy

__all__ = [
    "DROP_INVALID_SESSION",
    "DROP_NO_SESSION",
    "ENTRY_OVERHEAD",
    "IGNORED_LOGGERS",
    "DeliveryOptions",
    "EngineLike",
    "default_diagnostics",
    "shared_engine",
    "unknown_keywords",
]

#: Loggers whose records are never shipped (nor those of their children):
#: delivering one would produce more records to deliver.
IGNORED_LOGGERS: Final = ("httpx", "httpcore", "ingress_logging")

# Drop reasons of a front door (the engine counts its own).
DROP_NO_SESSION: Final = "no_session_id"
DROP_INVALID_SESSION: Final = "invalid_session_id"


class EngineLike(Protocol):
    """The part of ``delivery.DeliveryEngine`` every front door uses.

    ``submit`` calls a builder (``entry`` as a callable) inside a copy of the
    submitting thread's context (``contextvars.copy_context()`` taken at
    submit): the handler's builders read the active span there.
    """

    def submit(
        self,
        session_id: str,
        entry: dict[str, Any] | Callable[[], dict[str, Any]],
        *,
        record: object | None = None,
        size_hint: int | None = None,
    ) -> bool: ...

    def flush(self, timeout: float | None = None) -> FlushResult: ...


def default_diagnostics(plugins: Any) -> DiagnosticSink:
    """Plugin sinks plus the default one (the diagnostics logger / file), as the engine's."""
    try:
        from .plugins import PluginHost

        return PluginHost(plugins).diagnostic
    except Exception:
        return logger_sink


@dataclass(frozen=True, kw_only=True)
class DeliveryOptions:
    """The engine settings a front door passes on; None keeps the engine's default.

    See ``DeliveryEngine`` (docs/configuration.md) for what each one does.
    """

    retry_policy: RetryPolicy | None = None
    max_queue_entries: int | None = None
    max_queue_bytes: int | None = None
    overflow: str | None = None
    block_timeout: float | None = None
    max_concurrency: int | None = None
    max_idle_sessions: int | None = None
    pipeline_window: int | None = None
    timeout: float | httpx.Timeout | None = None
    allow_insecure_http: bool | None = None
    spool_dir: str | os.PathLike[str] | None = None
    spool_max_bytes: int | None = None

    def given(self) -> dict[str, Any]:
        """The settings that were given (None left out, so equal settings share an engine)."""
        # Not dataclasses.asdict: it would turn a RetryPolicy into a dict.
        values = ((f.name, getattr(self, f.name)) for f in fields(self))
        return {name: value for name, value in values if value is not None}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def unknown_keywords(
    owner: str,
    unknown: Mapping[str, object],
    known: Iterable[str],
    renamed: Mapping[str, str] | None = None,
) -> TypeError:
    """A ``TypeError`` naming ``owner`` and, for each unknown keyword, the right one.

    ``renamed`` maps names this API no longer takes to the one it does
    (``policy`` -> ``overflow``); otherwise the closest known name is
    suggested (``sesion_id`` -> ``session_id``).
    """
    choices = list(known)
    parts = []
    for name in unknown:
        right = (renamed or {}).get(name)
        if right is None:
            close = difflib.get_close_matches(name, choices, n=1)
            right = close[0] if close else None
        parts.append(f"{name!r}" + (f" (did you mean {right!r}?)" if right else ""))
    return TypeError(f"{owner}() got an unexpected keyword argument {', '.join(parts)}")


def shared_engine(
    *,
    url: str | None,
    token: str | Callable[[], str | None] | None,
    base_api_url: str | None,
    plugins: Any,
    options: DeliveryOptions,
    close_timeout: float | None,
    hold: bool = False,
) -> Any:
    """The process-wide engine for these settings (the handler's and the exporters' alike).

    ``hold=True``: the caller releases it (``release_shared_engine``) when done.

    Raises ``ConfigError`` when no URL is configured anywhere: there is no
    built-in host, and a token must never be sent somewhere the user did
    not name.
    """
    from .delivery import get_shared_engine  # httpx loads only when a front door is built
    from .plugins import PluginHost

    PluginHost(plugins, url_template=url, base_api_url=base_api_url).require_url()
    engine = get_shared_engine(
        hold=hold,
        url_template=url,
        token=token,
        base_api_url=base_api_url,
        plugins=plugins,
        **options.given(),
    )
    if close_timeout is not None:
        # The engine, not the front door, closes at exit (before
        # logging.shutdown): it must keep the deadline the app set here
        # (the shortest one any front door asked for wins).
        engine.limit_close_timeout(close_timeout)
    return engine
