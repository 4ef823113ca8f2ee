"""Plugin managers and ``PluginHost``, the ``Host`` the client and engine talk to.

* ``get_plugin_manager()`` - the process-wide manager, built once (thread-safe,
  idempotent): hookspecs, the blocklist from ``INGRESS_LOGGING_DISABLE_PLUGINS``
  (comma-separated entry-point names), every plugin in the ``ingress_logging``
  entry-point group, the default plugin (always last), then ``check_pending()``
  so a misspelt hook name is an error instead of a silent no-op.
* ``register(obj)`` / ``unregister(obj)`` - add or remove a plugin in code.
* ``new_plugin_manager()`` - a separate manager for one handler or client, so
  two handlers in one process can point at two services.
* ``PluginHost`` - turns a manager plus constructor settings into the answers
  the core needs (token, URL, headers, diagnostics, entry preparation), with
  the precedence rules documented on each method.

``INGRESS_LOGGING_TRACE_PLUGINS=1`` prints the token, URL and header hook
calls to stderr, tokens elided. (``diagnostic`` and ``prepare_entry`` call
each implementation separately, to isolate failures, so they are not traced.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import pluggy

from . import _defaults, hookspecs
from ._notices import NOTICES
from ._session_id import validate_session_id
from .diagnostics import (
    DIAGNOSTIC_SINK_FAILED,
    PLUGIN_PREPARE_ENTRY_FAILED,
    DiagnosticData,
    DiagnosticSink,
    Level,
    logger_sink,
)
from .errors import ConfigError
from .hookspecs import PROJECT_NAME, Verdict, hookimpl

__all__ = [
    "ENV_DISABLE_PLUGINS",
    "ENV_TRACE_PLUGINS",
    "PLUGIN_FAILED",
    "PluginHost",
    "get_plugin_manager",
    "hookimpl",
    "new_plugin_manager",
    "register",
    "unregister",
    "url_plugins",
]

ENV_DISABLE_PLUGINS: Final = "INGRESS_LOGGING_DISABLE_PLUGINS"
ENV_TRACE_PLUGINS: Final = "INGRESS_LOGGING_TRACE_PLUGINS"

#: Diagnostics event: an ``ingress_prepare_entry`` implementation raised; the
#: entry was dropped. Data: ``{"plugin": name, "count": 1}``.
PLUGIN_FAILED: Final = PLUGIN_PREPARE_ENTRY_FAILED

_log = logging.getLogger(__name__)

TokenSource = str | Callable[[], str | None]

# --- managers -------------------------------------------------------------


def _blocked_names() -> list[str]:
    raw = os.environ.get(ENV_DISABLE_PLUGINS, "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def _trace_writer(
    hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
) -> None:
    names = ", ".join(impl.plugin_name for impl in reversed(hook_impls))
    shown = {k: ("<entry>" if k in ("entry", "record") else v) for k, v in kwargs.items()}
    print(f"ingress_logging plugins: {hook_name}({shown}) -> [{names}]", file=sys.stderr)


def _trace_after(
    outcome: pluggy.Result[Any],
    hook_name: str,
    hook_impls: Sequence[pluggy.HookImpl],
    kwargs: Mapping[str, Any],
) -> None:
    if outcome.exception is not None:
        shown = type(outcome.exception).__name__
    elif hook_name in ("ingress_auth_token", "ingress_prepare_entry"):
        # Never print a token or entry content.
        shown = "<redacted>"
    elif hook_name == "ingress_request_headers":
        shown = repr([sorted(h) for h in outcome.get_result() or [] if isinstance(h, Mapping)])
    else:
        shown = repr(outcome.get_result())
    print(f"ingress_logging plugins: {hook_name} returned {shown}", file=sys.stderr)


class _PluginManager(pluggy.PluginManager):
    """A ``PluginManager`` that keeps the default plugin last, whatever comes later.

    Pluggy calls the most recently registered ``trylast`` implementation
    last, so a ``trylast`` plugin registered after the default plugin would
    be asked after it - and a firstresult hook would never reach it while an
    environment token exists. Such a registration re-seats the default.
    """

    def register(self, plugin: object, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        if registered is not None and plugin is not _defaults and self.is_registered(_defaults):
            callers = self.get_hookcallers(plugin) or []
            if any(
                impl.trylast and impl.plugin is plugin
                for caller in callers
                for impl in caller.get_hookimpls()
            ):
                super().unregister(_defaults)
                super().register(_defaults, name=_defaults.DEFAULT_PLUGIN_NAME)
        return registered


def new_plugin_manager(*, load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A fresh manager: hookspecs, blocklist, entry points (optional), defaults.

    Entry points load by default so that installed plugins - a redaction
    plugin especially - also apply to per-instance managers; pass
    ``load_entrypoints=False`` for a manager that holds only what you register.
    """
    pm = _PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in _blocked_names():
        pm.set_blocked(name)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(PROJECT_NAME)
    pm.register(_defaults, name=_defaults.DEFAULT_PLUGIN_NAME)
    pm.check_pending()
    if os.environ.get(ENV_TRACE_PLUGINS):
        pm.add_hookcall_monitoring(_trace_writer, _trace_after)
    return pm


_pm: pluggy.PluginManager | None = None
_pm_lock = threading.Lock()


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, created (and entry points loaded) on first use."""
    global _pm
    if _pm is None:
        with _pm_lock:
            if _pm is None:
                _pm = new_plugin_manager()
    return _pm


def register(obj: object, name: str | None = None) -> str:
    """Register ``obj`` as a plugin in the process-wide manager; returns its name.

    Raises ``ValueError`` if it (or its name) is already registered,
    ``ConfigError`` if the name is blocked by ``INGRESS_LOGGING_DISABLE_PLUGINS``,
    and ``pluggy.PluginValidationError`` (leaving nothing registered) if it
    implements a hook that does not exist.
    """
    pm = get_plugin_manager()
    registered = pm.register(obj, name=name)
    if registered is None:
        raise ConfigError(f"plugin {name!r} is blocked by {ENV_DISABLE_PLUGINS}")
    try:
        pm.check_pending()  # a misspelt hook name would otherwise do nothing, silently
    except pluggy.PluginValidationError:
        pm.unregister(name=registered)
        raise
    return registered


def unregister(obj: object | None = None, name: str | None = None) -> object | None:
    """Remove a plugin (by object or name) from the process-wide manager."""
    pm = get_plugin_manager()
    if obj is not None and not pm.is_registered(obj):
        return None
    if obj is None and (name is None or pm.get_plugin(name) is None):
        return None
    return pm.unregister(plugin=obj, name=name)


# --- the host -------------------------------------------------------------


def _impls_in_call_order(caller: pluggy.HookCaller) -> list[pluggy.HookImpl]:
    """Plain (non-wrapper) implementations in the order pluggy would call them."""
    return [
        impl for impl in reversed(caller.get_hookimpls()) if not (impl.hookwrapper or impl.wrapper)
    ]


def _call_impl(impl: pluggy.HookImpl, kwargs: Mapping[str, object]) -> Any:
    """Call one implementation the way pluggy does: by argument *name*.

    An implementation may take its arguments in any order, or only some of
    them (``def ingress_prepare_entry(entry)``); a positional call would
    hand it the wrong values or raise ``TypeError``.
    """
    return impl.function(*[kwargs[name] for name in impl.argnames])


def _manager_for(plugins: pluggy.PluginManager | Sequence[object] | None) -> pluggy.PluginManager:
    """The manager a host uses: the process-wide one, the one given, or one built for a list.

    A list (or tuple) of plugin objects gets a fresh manager - installed
    plugins and the default included, like ``new_plugin_manager()`` - with
    those objects registered: plugins for one handler or client only.
    """
    if plugins is None:
        return get_plugin_manager()
    if isinstance(plugins, pluggy.PluginManager):
        return plugins
    if not isinstance(plugins, list | tuple):
        raise ConfigError(
            "plugins must be a pluggy.PluginManager or a list of plugin objects, "
            f"not {type(plugins).__name__}"
        )
    pm = new_plugin_manager()
    for plugin in plugins:
        if pm.register(plugin) is None:
            raise ConfigError(f"a plugin in plugins= is blocked by {ENV_DISABLE_PLUGINS}")
    pm.check_pending()
    return pm


def url_plugins(pm: pluggy.PluginManager) -> list[str]:
    """Names of the plugins that answer ``ingress_session_url`` (the default one aside)."""
    caller: pluggy.HookCaller = pm.hook.ingress_session_url
    return [impl.plugin_name for impl in caller.get_hookimpls() if impl.plugin is not _defaults]


class PluginHost:
    """The real ``ingress_logging._host.Host``: plugins first, then settings, then defaults.

    Thread-safe: the client and the delivery workers call it concurrently.
    The constructor token is never shown by ``repr`` or in any message.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager | Sequence[object] | None = None,
        *,
        token: TokenSource | None = None,
        url_template: str | None = None,
        base_api_url: str | None = None,
        diagnostics: DiagnosticSink | None = None,
    ) -> None:
        if url_template is not None and "{session_id}" not in url_template:
            raise ConfigError("url_template must contain '{session_id}'")
        if token is not None and not (isinstance(token, str) or callable(token)):
            raise ConfigError(f"token must be a str or a callable, not {type(token).__name__}")
        self.pm = _manager_for(pm)
        if not hasattr(self.pm.hook, "ingress_auth_token"):
            self.pm.add_hookspecs(hookspecs)
        self._token = token
        self.url_template = url_template
        self.base_api_url = base_api_url
        self._diagnostics = diagnostics
        self._lock = threading.Lock()
        # The last URL resolved: notices name its origin (never its path).
        self._last_url: str | None = None
        #: How many times a diagnostics sink raised (each is isolated).
        self.sink_failures = 0
        #: How many entries were dropped because an ``ingress_prepare_entry`` raised.
        self.prepare_failures = 0
        #: How many entries a plugin dropped on purpose (returned ``DROP``).
        self.prepare_drops = 0

    def __repr__(self) -> str:
        token = "unset" if self._token is None else "<set>"
        return (
            f"{type(self).__name__}(project={self.pm.project_name!r}, token={token}, "
            f"url_template={self.url_template!r}, base_api_url={self.base_api_url!r})"
        )

    # -- firstresult hooks, minus the default plugin (it is our last resort)

    def _without_defaults(self, name: str) -> pluggy.HookCaller:
        caller: pluggy.HookCaller = getattr(self.pm.hook, name)
        return (
            self.pm.subset_hook_caller(name, remove_plugins=[_defaults])
            if any(impl.plugin is _defaults for impl in caller.get_hookimpls())
            else caller
        )

    def auth_token(self, session_id: str) -> str | None:
        """Plugins (first answer) > constructor token > ``INGRESS_LOGGING_TOKEN`` > token file."""
        validate_session_id(session_id)
        token = self._without_defaults("ingress_auth_token")(session_id=session_id)
        if token is not None:
            if not isinstance(token, str):
                # Say what type, never what value: it may be a token in disguise.
                raise ConfigError(
                    f"ingress_auth_token must return a str or None, not {type(token).__name__}"
                )
            return token
        if isinstance(self._token, str):
            return self._token
        if self._token is not None:
            token = self._token()
            if token is not None:
                return token
        return _defaults.env_token()

    def session_url(self, session_id: str) -> str:
        """Plugins (first answer) > ``url_template`` > ``base_api_url`` > environment > default."""
        validate_session_id(session_id)
        url = self._without_defaults("ingress_session_url")(session_id=session_id)
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ConfigError("ingress_session_url must return an http(s) URL string")
        else:
            url = _defaults.build_session_url(
                session_id, url_template=self.url_template, base_api_url=self.base_api_url
            )
        self._last_url = url
        return url

    def require_url(self) -> None:
        """Raise ``ConfigError`` unless a URL is configured somewhere (there is no built-in host).

        A plugin answering ``ingress_session_url``, ``url_template``,
        ``base_api_url``, ``INGRESS_LOGGING_URL`` or ``INGRESS_LOGGING_BASE_URL``.
        """
        if url_plugins(self.pm) or _defaults.url_configured(
            url_template=self.url_template, base_api_url=self.base_api_url
        ):
            return
        raise ConfigError(_defaults.NO_URL_MESSAGE)

    def request_headers(self, session_id: str) -> Mapping[str, str]:
        """Every plugin's headers merged; on a clash the plugin called first wins."""
        validate_session_id(session_id)
        merged: dict[str, str] = {}
        seen: set[str] = set()
        for result in self.pm.hook.ingress_request_headers(session_id=session_id):
            if not result:
                continue
            for key, value in dict(result).items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise ConfigError("ingress_request_headers must return str names and values")
                if any(c in key + value for c in "\r\n\0"):
                    raise ConfigError(f"header {key[:64]!r} contains CR, LF or NUL")
                folded = key.lower()
                if folded == "authorization" or folded in seen:
                    continue
                seen.add(folded)
                merged[key] = value
        return merged

    # -- diagnostics: 1:N, isolated

    def diagnostic(self, level: Level, event: str, data: DiagnosticData) -> None:
        """Fan out to every plugin sink, the explicit sink, then the default plugin.

        Plugin sinks observe; they do not replace the default logger output
        (installing a metrics plugin must not silence the logs). An explicit
        ``diagnostics`` sink does replace it. When none of them (nor the
        diagnostics file) takes the event, failures are also said once on
        stderr (see ``_notices``). Never raises.
        """
        self._diagnostic(level, event, data, "")

    def _diagnostic(self, level: Level, event: str, data: DiagnosticData, detail: str) -> None:
        failed = 0
        routed = self._diagnostics is not None or bool(
            os.environ.get(_defaults.ENV_DIAGNOSTICS_FILE)
        )
        for impl in _impls_in_call_order(self.pm.hook.ingress_diagnostic):
            if impl.plugin is _defaults:
                continue
            routed = True
            try:
                _call_impl(impl, {"level": level, "event": event, "data": data})
            except Exception:
                failed += 1
                _log.debug("diagnostics sink %s raised", impl.plugin_name, exc_info=True)
        if self._diagnostics is not None:
            try:
                self._diagnostics(level, event, data)
            except Exception:
                failed += 1
                _log.debug("explicit diagnostics sink raised", exc_info=True)
        try:
            _defaults.write_diagnostic(level, event, data, log=self._diagnostics is None)
        except Exception:
            failed += 1
            _log.debug("default diagnostics sink raised", exc_info=True)
        if failed:
            with self._lock:
                self.sink_failures += failed
            # The logging module reports its own handler errors; never raise here.
            with contextlib.suppress(Exception):
                logger_sink("warn", DIAGNOSTIC_SINK_FAILED, {"count": failed})
        if not routed and level in ("warn", "error"):
            NOTICES.observe(event, data, url=self._last_url, detail=detail)

    # -- entry preparation: a chain that fails closed

    def prepare_entry(self, entry: dict[str, Any], record: object) -> dict[str, Any] | None:
        """Run every ``ingress_prepare_entry`` in order; ``None`` means drop.

        A raising implementation drops the entry (fail closed: an unredacted
        entry could leak a secret) and is counted in ``prepare_failures``.
        """
        current = entry
        for impl in _impls_in_call_order(self.pm.hook.ingress_prepare_entry):
            try:
                result = _call_impl(impl, {"entry": current, "record": record})
            except Exception as exc:
                with self._lock:
                    self.prepare_failures += 1
                # The exception text may quote entry content: log only its type.
                _log.warning(
                    "ingress_prepare_entry of plugin %s raised %s; entry dropped",
                    impl.plugin_name,
                    type(exc).__name__,
                )
                # A configuration error's text is ours and names the setting.
                detail = str(exc) if isinstance(exc, ConfigError) else type(exc).__name__
                self._diagnostic(
                    "error", PLUGIN_FAILED, {"plugin": impl.plugin_name, "count": 1}, detail
                )
                return None
            if result is None:
                continue
            if result is Verdict.DROP:
                with self._lock:
                    self.prepare_drops += 1
                return None
            if not isinstance(result, dict):
                with self._lock:
                    self.prepare_failures += 1
                self.diagnostic("error", PLUGIN_FAILED, {"plugin": impl.plugin_name, "count": 1})
                return None
            current = result
        return current
