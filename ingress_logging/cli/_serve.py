"""``ingress-logging serve``: the local session-ingress server in the foreground.

A thin wrapper over ``ingress_logging.server.serve``: options map one to one,
and the fault switches (``--latency``, ``--fail-share``, ``--faults JSON``)
build the same spec the admin endpoint accepts, so a demo or a benchmark can
start a misbehaving server from the shell. ``--rtt 50ms`` puts a delaying
proxy (``ingress_logging.testing_proxy``) on the requested address and the
server behind it on an ephemeral port: a real round trip that, unlike
``--latency``, does not serialise a connection's pipelined requests.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from .. import _defaults
from ..testing_proxy import DelayProxy
from ..testing_proxy import parse_duration as parse_rtt
from ._config import CliConfig, pass_config

if TYPE_CHECKING:
    from ..server import IngressServer

__all__ = ["fault_spec", "serve"]


def fault_spec(
    faults: str | None, latency: float | None, fail_share: float | None, fail_status: int, seed: int
) -> dict[str, Any]:
    """Merge ``--faults`` JSON with the convenience switches into one spec."""
    spec: dict[str, Any] = {}
    if faults:
        try:
            loaded = json.loads(faults)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON ({exc})", param_hint="--faults") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--faults")
        spec.update(loaded)
    if latency is not None:
        spec["latency"] = latency
    if fail_share is not None:
        spec["fail_share"] = {"share": fail_share, "status": fail_status, "seed": seed}
    return spec


@click.command()
@click.option("--host", default="127.0.0.1", show_envvar=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_envvar=True,
    help="0 picks a free port.",
)
@click.option(
    "--db",
    default="./ingress.db",
    envvar="INGRESS_LOGGING_DB",
    show_envvar=True,
    help="SQLite file (created if missing), :memory:, or postgresql://user:pw@host/db.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_envvar=True,
    help="Server processes sharing the port (PostgreSQL only; SQLite has one writer).",
)
@click.option("--certfile", show_envvar=True, help="TLS certificate chain (PEM): serve HTTPS.")
@click.option("--keyfile", show_envvar=True, help="TLS private key (PEM) for --certfile.")
@click.option(
    "--retention",
    metavar="DURATION",
    show_envvar=True,
    help="Remove sessions idle longer than this (30d, 12h, 15m, or seconds).",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_envvar=True,
    help="One JSON line per request on stderr (never a token or an entry).",
)
@click.option(
    "--token",
    "server_token",
    envvar=_defaults.ENV_TOKEN,
    show_envvar=True,
    metavar="TOKEN",
    help="Bearer token the server accepts (required; also the group's --token).",
)
@click.option(
    "--oauth-token",
    show_envvar=True,
    metavar="TOKEN",
    help="OAuth bearer accepted by the OAuth read and teleport events [default: the token]",
)
@click.option(
    "--org-uuid",
    show_envvar=True,
    metavar="UUID",
    help="x-organization-uuid required with the OAuth token [default: any is accepted]",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    default=None,
    show_envvar=True,
    help="Largest PUT body; larger gets 413 [default: the server's]",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=None,
    show_envvar=True,
    help="Fault: seconds added to every request.",
)
@click.option(
    "--fail-share",
    type=click.FloatRange(0, 1),
    default=None,
    show_envvar=True,
    help="Fault: share of PUTs answered with --fail-status (nothing stored).",
)
@click.option(
    "--fail-status",
    type=click.IntRange(400, 599),
    default=503,
    show_envvar=True,
    help="Status for --fail-share.",
)
@click.option("--seed", type=int, default=0, show_envvar=True, help="Random seed for --fail-share.")
@click.option(
    "--rtt",
    metavar="DURATION",
    default=None,
    show_envvar=True,
    help="Add a network round trip (e.g. 50ms): a delaying proxy listens on --host/--port.",
)
@click.option(
    "--faults",
    metavar="JSON",
    show_envvar=True,
    help='Fault spec as POSTed to /_admin/faults, e.g. \'{"fail_next": {"n": 2}}\'.',
)
@pass_config
def serve(
    config: CliConfig,
    host: str,
    port: int,
    db: str,
    server_token: str | None,
    oauth_token: str | None,
    org_uuid: str | None,
    max_body_bytes: int | None,
    latency: float | None,
    fail_share: float | None,
    fail_status: int,
    seed: int,
    faults: str | None,
    workers: int,
    certfile: str | None,
    keyfile: str | None,
    retention: str | None,
    access_log: bool,
    rtt: str | None,
) -> None:
    """Run a session-ingress server (SQLite or PostgreSQL) until Ctrl-C or SIGTERM.

    \b
    Point a client at it with:
      export INGRESS_LOGGING_BASE_URL=http://127.0.0.1:8765
      export INGRESS_LOGGING_TOKEN=<the same token>
    """
    from ..errors import ConfigError
    from ..server import DEFAULT_MAX_BODY_BYTES
    from ..server import serve as run
    from ..server._serve import parse_duration
    from ..server.store import StoreError

    token = server_token or config.token
    spec = fault_spec(faults, latency, fail_share, fail_status, seed)
    delay = _rtt_seconds(rtt)
    seconds = delay if delay is not None else 0.0
    proxies: list[DelayProxy] = []

    def in_front(server: IngressServer) -> None:
        try:
            proxy = DelayProxy(server.base_url, rtt=seconds, host=host, port=port).start()
        except OSError as exc:
            message = f"--rtt proxy cannot listen on {host}:{port}: {exc}"
            raise click.ClickException(message) from None
        proxies.append(proxy)
        click.echo(f"  with a {seconds * 1000:g} ms round trip: {proxy.base_url}", err=True)

    try:
        keep = None if retention is None else parse_duration(retention)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--retention") from None
    try:
        run(
            host,
            0 if delay is not None else port,
            db,
            token,
            oauth_token=oauth_token,
            org_uuid=org_uuid,
            max_body_bytes=max_body_bytes if max_body_bytes is not None else DEFAULT_MAX_BODY_BYTES,
            faults=spec or None,
            workers=workers,
            certfile=certfile,
            keyfile=keyfile,
            retention=keep,
            access_log=access_log,
            on_ready=in_front if delay is not None else None,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    except StoreError as exc:  # names the database (never its password)
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # names the host and port ("address already in use")
        raise click.ClickException(exc.strerror or str(exc)) from None
    except ValueError as exc:
        raise click.ClickException(f"bad fault switches: {exc}") from None
    finally:
        for proxy in proxies:
            proxy.close()


def _rtt_seconds(rtt: str | None) -> float | None:
    if rtt is None:
        return None
    try:
        return parse_rtt(rtt)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rtt") from None
