"""Operating a team server: ``tokens``, ``sessions`` and ``migrate``.

``tokens`` and ``migrate`` work on the store itself (``--db``, the same
address ``serve`` takes; run them where the database is reachable).
``sessions`` asks a running server over HTTP, with the URL and token the
other commands use, so it needs only a ``read`` token.
"""

from __future__ import annotations

from typing import Any

import click
import httpx

from ._config import CliConfig, pass_config

__all__ = ["migrate", "sessions", "tokens"]

ENV_DB = "INGRESS_LOGGING_DB"

db_option = click.option(
    "--db",
    default="./ingress.db",
    envvar=ENV_DB,
    show_envvar=True,
    help="SQLite file or postgresql://... URL of the server's store.",
)


def _open(db: str, *, migrate: bool = True) -> Any:
    from ..server.store import open_store

    return open_store(db, migrate=migrate)


@click.group()
def tokens() -> None:
    """Named tokens of a server: create, list, revoke (stored hashed)."""


@tokens.command("create")
@click.option("--name", required=True, help="A unique name: letters, digits, '-', '_', '.'.")
@click.option(
    "--scope",
    type=click.Choice(["append", "read", "admin"]),
    required=True,
    help="append: PUT entries; read: read and list; admin: everything, delete included.",
)
@db_option
def tokens_create(name: str, scope: str, db: str) -> None:
    """Create a token and print it once (it cannot be shown again)."""
    from ..server.store import check_scope

    store = _open(db)
    try:
        plain = store.create_token(name, check_scope(scope))
    finally:
        store.close()
    click.echo(plain)
    click.echo(f"token {name!r} ({scope}) created; it is shown only this once.", err=True)


@tokens.command("list")
@db_option
def tokens_list(db: str) -> None:
    """List the tokens: name, scope, creation time (never the token)."""
    store = _open(db)
    try:
        rows = store.list_tokens()
    finally:
        store.close()
    for row in rows:
        click.echo(f"{row.name}\t{row.scope}\t{row.created_at}")
    if not rows:
        click.echo("no tokens", err=True)


@tokens.command("revoke")
@click.argument("name")
@db_option
def tokens_revoke(name: str, db: str) -> None:
    """Delete the token NAME; requests with it get 401 from then on."""
    store = _open(db)
    try:
        found = store.revoke_token(name)
    finally:
        store.close()
    if not found:
        raise click.ClickException(f"no token named {name!r}")
    click.echo(f"token {name!r} revoked", err=True)


@click.command()
@db_option
def migrate(db: str) -> None:
    """Upgrade the store's schema to this version (serve also does it on start).

    A database with a newer schema than this version knows is refused.
    """
    store = _open(db)  # opening applies the missing migrations, in order
    try:
        version = store.schema_version()
    finally:
        store.close()
    click.echo(f"{store.description}: schema version {version}, up to date")


@click.command()
@click.option("--prefix", default="", help="Only sessions whose id starts with this.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, help="How many to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON pages.")
@pass_config
def sessions(config: CliConfig, prefix: str, limit: int, as_json: bool) -> None:
    """List a server's sessions, newest activity first (needs a read token).

    One line per session: id, entries, first and last activity (tab-separated).
    The token is --token, --token-file or INGRESS_LOGGING_TOKEN: a listing
    belongs to no session, so per-session token plugins are not asked.
    """
    import json

    from .. import _defaults

    config.check()
    # a listing belongs to no session, so per-session token plugins have no say:
    # --token, --token-file, then INGRESS_LOGGING_TOKEN
    token = config._token_source() or _defaults.env_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = config.base_api_url() + "/v1/session_ingress/sessions"
    shown = 0
    cursor: str | None = None
    with httpx.Client(timeout=config.timeout) as http:
        while shown < limit:
            params: dict[str, Any] = {"prefix": prefix, "limit": min(limit - shown, 1000)}
            if cursor:
                params["cursor"] = cursor
            reply = http.get(url, params=params, headers=headers)
            if reply.status_code == 401:
                raise click.ClickException("the server rejected the token (401)")
            if reply.status_code == 403:
                raise click.ClickException("403: this token may not list sessions (read scope)")
            if reply.status_code != 200:
                raise click.ClickException(f"{url} answered {reply.status_code}")
            page = reply.json()
            if as_json:
                click.echo(json.dumps(page))
            for item in page["sessions"]:
                if not as_json:
                    click.echo(
                        f"{item['id']}\t{item['entries']}\t{item['first_activity']}"
                        f"\t{item['last_activity']}"
                    )
                shown += 1
            cursor = page.get("next_cursor")
            if not cursor:
                break
    if shown == 0 and not as_json:
        click.echo("no sessions", err=True)
