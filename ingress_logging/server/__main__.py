"""``python -m ingress_logging.server``: run the local server in the foreground."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError
from ._serve import parse_duration, serve
from ._server import DEFAULT_MAX_BODY_BYTES
from .store import StoreError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ingress_logging.server",
        description="Run a session-ingress server (HTTP on HOST:PORT; SQLite or PostgreSQL).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument(
        "--db", default="./ingress.db", help="SQLite file, :memory:, or postgresql://..."
    )
    p.add_argument("--workers", type=int, default=1, help="processes (PostgreSQL only)")
    p.add_argument("--certfile", default=None, help="TLS certificate chain (PEM): serve HTTPS")
    p.add_argument("--keyfile", default=None, help="TLS private key (PEM)")
    p.add_argument("--retention", default=None, help="remove sessions idle longer (30d, 12h)")
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one JSON line per request on stderr",
    )
    p.add_argument(
        "--token", default=None, help="ingress bearer token (default: $INGRESS_LOGGING_TOKEN)"
    )
    p.add_argument("--oauth-token", default=None, help="OAuth bearer (default: the token)")
    p.add_argument("--org-uuid", default=None, help="x-organization-uuid (default: random)")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    p.add_argument("--latency", type=float, default=None, help="seconds added to each request")
    p.add_argument("--fail-share", type=float, default=None, help="share (0..1) of PUTs failed")
    p.add_argument("--fail-status", type=int, default=503, help="status for --fail-share")
    p.add_argument("--seed", type=int, default=0, help="random seed for --fail-share")
    p.add_argument("--faults", default=None, help="JSON fault spec, as POSTed to /_admin/faults")
    return p


def faults_from_args(args: argparse.Namespace) -> dict[str, object]:
    """Merge ``--faults`` JSON with the convenience flags into one spec."""
    spec: dict[str, object] = {}
    if args.faults:
        loaded = json.loads(args.faults)
        if not isinstance(loaded, dict):
            raise ValueError("--faults must be a JSON object")
        spec.update(loaded)
    if args.latency is not None:
        spec["latency"] = args.latency
    if args.fail_share is not None:
        spec["fail_share"] = {
            "share": args.fail_share,
            "status": args.fail_status,
            "seed": args.seed,
        }
    return spec


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        spec = faults_from_args(args)
        serve(
            args.host,
            args.port,
            args.db,
            args.token,
            oauth_token=args.oauth_token,
            org_uuid=args.org_uuid,
            max_body_bytes=args.max_body_bytes,
            faults=spec or None,
            workers=args.workers,
            certfile=args.certfile,
            keyfile=args.keyfile,
            retention=None if args.retention is None else parse_duration(args.retention),
            access_log=args.access_log,
        )
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # names the db (never its password)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the port is taken (the message names host and port)
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
