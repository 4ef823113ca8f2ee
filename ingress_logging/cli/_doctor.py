"""``ingress-logging doctor``: is this machine set up to ship? Plain words, no secrets.

Checks, in the order a person would debug them: the settings themselves, the
session URL they produce, where the token comes from (never the token), the
plugins that are installed, whether the server answers and accepts the token
for reading *and* for appending, and how far the local clock is from the
server's ``Date`` header (entry timestamps come from the local clock). Exit
status 1 if any check failed: "all checks passed" means ``ship`` with the same
configuration reaches a route that takes appends with this token.

The append check stores nothing: it sends a probe entry with a ``Last-Uuid``
that cannot be the head, which a session-ingress server answers 409 without
storing (PROTOCOL.md). So a 404 there is a wrong URL path (no such route),
never "the session does not exist"; a 401/403 is a token that may read but
not append (for example an OAuth token a plugin put in the ingress token's
place).
"""

from __future__ import annotations

import datetime
import email.utils
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Final, Literal

import click
import httpx

from .. import _defaults
from ..client import check_url, describe_transport_error
from ..errors import IngressLoggingError
from ._config import CliConfig, one_line, pass_config

__all__ = ["PROBE_SESSION", "doctor"]

#: Session id read (never written) to see whether the server answers.
PROBE_SESSION: Final = "ingress-logging-doctor-probe"
#: Clock skew above this many seconds is worth a warning.
SKEW_WARN_SECONDS: Final = 5.0

Status = Literal["ok", "warn", "FAIL"]


@dataclass
class _Report:
    failed: int = 0

    def say(self, status: Status, what: str, text: str) -> None:
        if status == "FAIL":
            self.failed += 1
        colour = {"ok": "green", "warn": "yellow", "FAIL": "red"}[status]
        click.echo(f"{click.style(f'{status:<5}', fg=colour)} {what:<8} {text}")


def _token_origin(config: CliConfig) -> tuple[Status, str]:
    pm = config.plugin_manager()
    names = [
        impl.plugin_name
        for impl in pm.hook.ingress_auth_token.get_hookimpls()
        if impl.plugin_name != _defaults.DEFAULT_PLUGIN_NAME
    ]
    if names:
        caller = pm.subset_hook_caller(
            "ingress_auth_token", remove_plugins=[pm.get_plugin(_defaults.DEFAULT_PLUGIN_NAME)]
        )
        if caller(session_id=PROBE_SESSION) is not None:
            return "ok", f"set, from plugin {', '.join(names)}"
    if config.token:
        return "ok", f"set, from {config.token_origin or '--token'}"
    if config.token_file:
        where = f"--token-file / {_defaults.ENV_TOKEN_FILE} ({config.token_file})"
        if not os.path.isfile(config.token_file):
            return "FAIL", f"{where} does not exist"
        if _defaults.token_files.get(config.token_file) is None:
            return "FAIL", f"{where} is empty or cannot be read"
        return "ok", f"set, from {where}"
    return "FAIL", (
        f"no token: set {_defaults.ENV_TOKEN}, or {_defaults.ENV_TOKEN_FILE} to a file "
        "holding it, or install a token plugin"
    )


def _plugins(config: CliConfig) -> str:
    pm = config.plugin_manager()
    dists = {
        pm.get_name(plugin) or "?": dist.project_name for plugin, dist in pm.list_plugin_distinfo()
    }
    names = [
        f"{name} ({dists[name]})" if name in dists else name
        for name, _ in pm.list_name_plugin()
        if name != _defaults.DEFAULT_PLUGIN_NAME
    ]
    return ", ".join(sorted(names)) if names else "none (the built-in defaults only)"


def _clock(response: httpx.Response, sent: float, received: float) -> tuple[Status, str]:
    header = response.headers.get("date")
    if not header:
        return "warn", "the server sent no Date header; clock not checked"
    try:
        server_time = email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return "warn", "the server's Date header cannot be parsed; clock not checked"
    # The Date header has 1-second resolution and was stamped mid-request.
    local_mid = (sent + received) / 2
    skew = local_mid - (server_time + 0.5)
    if abs(skew) <= 1.0:
        return "ok", "in step with the server (within the Date header's 1 s resolution)"
    direction = "ahead of" if skew > 0 else "behind"
    status: Status = "warn" if abs(skew) > SKEW_WARN_SECONDS else "ok"
    return status, f"local clock is {abs(skew):.0f} s {direction} the server"


def _origin(url: str) -> str:
    parts = httpx.URL(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.host}{port}"


def _probe(config: CliConfig, url: str, report: _Report, have_token: bool) -> None:
    host = config.host()
    token = host.auth_token(PROBE_SESSION) if have_token else None
    headers = dict(host.request_headers(PROBE_SESSION))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    origin = _origin(url)
    sent = time.time()
    try:
        with httpx.Client(timeout=config.timeout) as http:
            response = http.get(url, headers=headers)
            received = time.time()
            if response.status_code in (200, 404) and token:
                _append_probe(http, url, headers, origin, report)
    except httpx.HTTPError as exc:
        report.say(
            "FAIL", "server", f"cannot connect to {origin} ({describe_transport_error(exc)})"
        )
        report.say("warn", "clock", "not checked (no answer from the server)")
        return
    ms = (received - sent) * 1000
    status = response.status_code
    if status in (200, 404):
        report.say("ok", "server", f"reachable at {origin}; the token can read ({ms:.0f} ms)")
    elif status == 401 and token:
        report.say("FAIL", "server", f"reachable at {origin}, but it rejected the token (401)")
    elif status == 401:
        report.say("ok", "server", f"reachable at {origin} (token not checked: none set)")
    else:
        report.say("FAIL", "server", f"reachable at {origin}, but it answered HTTP {status}")
    clock_status, clock_text = _clock(response, sent, received)
    report.say(clock_status, "clock", clock_text)


def _append_probe(
    http: httpx.Client, url: str, headers: dict[str, str], origin: str, report: _Report
) -> None:
    """PUT a probe whose ``Last-Uuid`` cannot be the head: 409 means appends work."""
    probe = {"uuid": str(uuid.uuid4()), "type": "system", "subtype": "doctor_probe"}
    response = http.put(
        url,
        content=json.dumps(probe),
        headers={
            **headers,
            "Content-Type": "application/json",
            "Last-Uuid": str(uuid.uuid4()),
        },
    )
    status = response.status_code
    if status == 409:
        report.say("ok", "append", "the server takes appends with this token (probe not stored)")
    elif status in (200, 201):
        report.say("warn", "append", "the server stored the probe entry without checking Last-Uuid")
    elif status == 404:
        report.say(
            "FAIL",
            "url",
            f"{origin} has no such route (404 to an append): is the URL path right? "
            "Sessions live at /v1/session_ingress/session/{session_id}",
        )
    elif status in (401, 403):
        report.say(
            "FAIL",
            "append",
            f"the token can read but not append ({status}); is a plugin supplying "
            "another token (an OAuth token) in place of the ingress token?",
        )
    else:
        report.say("FAIL", "append", f"the server answered an append with HTTP {status}")


@click.command()
@pass_config
def doctor(config: CliConfig) -> None:
    """Check the configuration and the server, and say what is wrong in plain words.

    Reports the session URL and where it comes from, where the token comes
    from (never the token itself), the plugins found, whether the server
    answers and accepts the token, and the clock skew against the server.
    Exit status 1 if any check failed.
    """
    report = _Report()
    problems = config.problems()
    for problem in problems:
        report.say("FAIL", "config", problem)
    try:
        config.plugin_manager()
    except Exception as exc:  # a broken plugin is a finding, not a crash
        report.say("FAIL", "plugins", f"loading the installed plugins failed: {one_line(exc)}")
        _finish(report)
    url: str | None = None
    if not problems:
        try:
            url = config.session_url(PROBE_SESSION)
            check_url(url, allow_insecure_http=config.allow_insecure_http)
            template = url.replace(PROBE_SESSION, "{session_id}")
            report.say("ok", "url", f"{template}  (from {config.url_origin()})")
        except (IngressLoggingError, ValueError) as exc:
            report.say("FAIL", "url", one_line(exc))
            url = None
    status, text = _token_origin(config)
    report.say(status, "token", text)
    report.say("ok", "plugins", _plugins(config))
    if url is not None:
        _probe(config, url, report, have_token=status != "FAIL")
    else:
        report.say("warn", "server", "not checked (no usable URL)")
    _finish(report)


def _finish(report: _Report) -> None:
    """The closing line; exit status 1 if anything failed."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    if report.failed:
        click.echo(f"{report.failed} problem(s) found ({now}).")
        raise click.exceptions.Exit(1)
    click.echo(f"all checks passed ({now}).")
