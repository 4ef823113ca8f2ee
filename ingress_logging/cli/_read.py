"""``show``, ``tail`` and ``export``: read a session back.

All three use the blocking client's reads: the session-ingress read (the
ingress token) or, with ``--teleport``, the teleport events (an OAuth token
and organization uuid). Human output is one line per entry (time, type, a
one-line summary); ``--json`` and ``export`` write each entry as one compact
JSON line, exactly as ``ship`` reads it back. ``show`` and ``tail`` keep only
the entries that pass ``--type``/``--level``/``--since``/``--grep``.

``tail --follow`` asks only for what is new (``_tail_after.Follower``).
"""

from __future__ import annotations

import re
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click
import httpx

from .._entry_filter import LEVELS, EntryFilter, parse_since
from ..entries import dump_line
from ._config import ENV_OAUTH_TOKEN, ENV_ORG_UUID, CliConfig, LastEvent, pass_config
from ._render import render_line
from ._tail_after import Follower

__all__ = ["export", "fetch_entries", "show", "tail"]

F = TypeVar("F", bound=Callable[..., Any])


def _source_options(func: F) -> F:
    """``--teleport``, ``--oauth-token``, ``--org-uuid``, ``--after-last-compact``."""
    options = [
        click.option(
            "--after-last-compact",
            is_flag=True,
            show_envvar=True,
            help="Only entries from the last compaction boundary on (session read only).",
        ),
        click.option(
            "--org-uuid",
            envvar=ENV_ORG_UUID,
            show_envvar=True,
            metavar="UUID",
            help="x-organization-uuid for --teleport.",
        ),
        click.option(
            "--oauth-token",
            envvar=ENV_OAUTH_TOKEN,
            show_envvar=True,
            metavar="TOKEN",
            help="OAuth access token for --teleport (prefer the environment variable).",
        ),
        click.option(
            "--teleport",
            is_flag=True,
            show_envvar=True,
            help="Read the session's teleport events instead of the session-ingress log.",
        ),
    ]
    for option in options:
        func = option(func)
    return func


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _grep(ctx: click.Context, param: click.Parameter, value: str | None) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        return re.compile(value)
    except re.error as exc:
        raise click.BadParameter(f"not a regular expression ({exc})") from None


def _filter_options(func: F) -> F:
    """``--type``, ``--level``, ``--since``, ``--grep``: which entries to print."""
    options = [
        click.option(
            "--grep",
            metavar="REGEX",
            callback=_grep,
            show_envvar=True,
            help="Only entries with a string value matching REGEX (Python syntax; "
            "(?i) for any case).",
        ),
        click.option(
            "--since",
            metavar="WHEN",
            callback=_since,
            show_envvar=True,
            help="Only entries stamped at or after WHEN: an ISO date/time "
            "(UTC unless it says) or an age such as 90s, 15m, 2h, 1d.",
        ),
        click.option(
            "--level",
            type=click.Choice(LEVELS, case_sensitive=False),
            show_envvar=True,
            help="Only entries with a level at least this (log entries, OTel logs, notices).",
        ),
        click.option(
            "--type",
            "types",
            multiple=True,
            metavar="TYPE",
            show_envvar=True,
            help="Only entries of this type, or type/subtype (e.g. assistant, system/log); "
            "repeat for several.",
        ),
    ]
    for option in options:
        func = option(func)
    return func


def _entry_filter(
    types: tuple[str, ...], level: str | None, since: datetime | None, grep: re.Pattern[str] | None
) -> EntryFilter:
    return EntryFilter(
        types=frozenset(types),
        min_level=level.lower() if level else None,
        since=since,
        grep=grep,
    )


def _is_uuid(value: str | None) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def fetch_entries(
    config: CliConfig,
    session_id: str,
    *,
    teleport: bool,
    oauth_token: str | None,
    org_uuid: str | None,
    after_last_compact: bool,
    after: str | None = None,
) -> list[dict[str, Any]]:
    """Every entry of the session, or a one-line ``ClickException`` saying why not.

    ``after`` (a uuid) asks the session read for only the entries after it;
    a server that ignores it returns them all (see :class:`~._tail_after.Follower`).
    """
    if teleport and not (oauth_token and org_uuid):
        raise click.UsageError(
            f"--teleport needs --oauth-token and --org-uuid (or {ENV_OAUTH_TOKEN} and "
            f"{ENV_ORG_UUID})"
        )
    if teleport and not _is_uuid(org_uuid):
        raise click.ClickException(f"organization uuid is not a UUID (--org-uuid / {ENV_ORG_UUID})")
    if teleport and after_last_compact:
        raise click.UsageError("--after-last-compact applies to the session read, not --teleport")
    sink = LastEvent(config.debug)
    with config.client(diagnostics=sink) as client:
        if teleport:
            assert oauth_token is not None
            assert org_uuid is not None
            result = client.get_teleport_events(session_id, oauth_token, org_uuid)
            if result is None:
                raise click.ClickException(
                    f"could not read teleport events of {session_id}: "
                    f"{sink.pop('not found or invalid reply')}"
                )
        else:
            url = config.session_url(session_id)
            if after is not None:
                url = str(httpx.URL(url).copy_merge_params({"after": after}))
            result = client.get_session_logs(session_id, url, after_last_compact=after_last_compact)
            if result is None:
                raise click.ClickException(
                    f"could not read session {session_id}: {sink.pop('invalid reply')}"
                )
    return result


def _emit(entries: list[dict[str, Any]], as_json: bool) -> None:
    stdout = sys.stdout.buffer
    for entry in entries:
        if as_json:
            stdout.write(dump_line(entry))
            stdout.flush()
        else:
            click.echo(render_line(entry))


# The parameter is named ``json`` (not ``as_json``) so that click's automatic
# variable is INGRESS_LOGGING_SHOW_JSON / INGRESS_LOGGING_TAIL_JSON, as the
# documented INGRESS_LOGGING_<COMMAND>_<OPTION> pattern promises.
_json_option = click.option(
    "--json", "json", is_flag=True, show_envvar=True, help="One JSON entry per line."
)


@click.command()
@click.argument("session_id", metavar="SESSION")
@_json_option
@_filter_options
@_source_options
@pass_config
def show(
    config: CliConfig,
    session_id: str,
    json: bool,
    types: tuple[str, ...],
    level: str | None,
    since: datetime | None,
    grep: re.Pattern[str] | None,
    teleport: bool,
    oauth_token: str | None,
    org_uuid: str | None,
    after_last_compact: bool,
) -> None:
    """Print every entry of SESSION: time, type and a one-line summary (or --json).

    --type, --level, --since and --grep keep only the entries that pass all of them.
    """
    keep = _entry_filter(types, level, since, grep)
    entries = fetch_entries(
        config,
        session_id,
        teleport=teleport,
        oauth_token=oauth_token,
        org_uuid=org_uuid,
        after_last_compact=after_last_compact,
    )
    if not entries:
        click.echo(f"session {session_id} has no entries", err=True)
        return
    kept = [entry for entry in entries if keep.matches(entry)]
    if not kept:
        click.echo(f"none of the {len(entries)} entries of {session_id} match", err=True)
    _emit(kept, json)


@click.command()
@click.argument("session_id", metavar="SESSION")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=10,
    show_envvar=True,
    help="How many of the last entries to print first.",
)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    show_envvar=True,
    help="Keep printing new entries (Ctrl-C ends).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_envvar=True,
    help="Seconds between reads with --follow.",
)
@_json_option
@_filter_options
@_source_options
@pass_config
def tail(
    config: CliConfig,
    session_id: str,
    lines: int,
    follow: bool,
    interval: float,
    json: bool,
    types: tuple[str, ...],
    level: str | None,
    since: datetime | None,
    grep: re.Pattern[str] | None,
    teleport: bool,
    oauth_token: str | None,
    org_uuid: str | None,
    after_last_compact: bool,
) -> None:
    """Print the last entries of SESSION; with --follow, keep printing new ones.

    With --type, --level, --since or --grep: the last matching entries, and
    only matching new ones.
    """
    keep = _entry_filter(types, level, since, grep)

    def fetch(after: str | None = None) -> list[dict[str, Any]]:
        return fetch_entries(
            config,
            session_id,
            teleport=teleport,
            oauth_token=oauth_token,
            org_uuid=org_uuid,
            after_last_compact=after_last_compact,
            after=after,
        )

    entries = fetch()
    kept = [entry for entry in entries if keep.matches(entry)]
    _emit(kept[len(kept) - lines :] if lines else [], json)
    if not follow:
        return
    # Reads after an entry work on the session read only; --after-last-compact
    # re-reads from the boundary, which moves.
    follower = Follower(entries, incremental=not (teleport or after_last_compact))
    stop = threading.Event()
    failing = False
    try:
        while not stop.wait(interval):
            # A failed read (server down or restarting, a 5xx) does not end
            # --follow, which runs until Ctrl-C: say so once, keep reading.
            # A rejected token (401) still ends it, with its one-line error.
            try:
                new = follower.new(fetch(follower.after))
            except click.ClickException as exc:
                if not failing:
                    click.echo(f"tail: {exc.format_message()}; still following", err=True)
                    failing = True
                continue
            if failing:
                click.echo("tail: reading the session again", err=True)
                failing = False
            _emit([entry for entry in new if keep.matches(entry)], json)
    except KeyboardInterrupt:
        return


@click.command()
@click.argument("session_id", metavar="SESSION")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, writable=True),
    show_envvar=True,
    help="JSONL file to write ('-' for stdout).",
)
@_source_options
@pass_config
def export(
    config: CliConfig,
    session_id: str,
    output: str,
    teleport: bool,
    oauth_token: str | None,
    org_uuid: str | None,
    after_last_compact: bool,
) -> None:
    """Write SESSION as JSONL that `ship` accepts (the round trip is exact).

    Each entry becomes one compact JSON line with its keys in stored order;
    shipping the file to another session and exporting that gives the same
    bytes. A session with no entries (session-ingress answers 404 whether it
    never existed or is empty) exits 1 and writes nothing.
    """
    entries = fetch_entries(
        config,
        session_id,
        teleport=teleport,
        oauth_token=oauth_token,
        org_uuid=org_uuid,
        after_last_compact=after_last_compact,
    )
    if not entries:
        raise click.ClickException(
            f"session {session_id} has no entries (it does not exist): nothing exported"
        )
    try:
        with click.open_file(output, "wb", atomic=output != "-") as stream:
            for entry in entries:
                stream.write(dump_line(entry))
    except OSError as exc:
        # Name the path the user gave, not the temporary file beside it.
        raise click.ClickException(
            f"cannot write {output}: {exc.strerror or type(exc).__name__}"
        ) from None
    click.echo(f"exported {len(entries)} entries of {session_id} to {output}", err=True)
