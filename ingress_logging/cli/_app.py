"""The ``ingress-logging`` click group: shared options, error policy, ``main()``.

Error policy: an expected failure (bad configuration, a refused session id,
an expired token, a server that cannot be reached) is one line on stderr and
exit status 1, never a traceback; ``--debug`` (or ``INGRESS_LOGGING_DEBUG=1``)
lets the traceback through and turns on the library's debug logging. Usage
errors are click's (exit status 2).

Every option can also be given as an environment variable: the shared ones
have fixed names (``INGRESS_LOGGING_URL``, ``INGRESS_LOGGING_TOKEN``, ...),
the per-command ones follow click's ``INGRESS_LOGGING_<COMMAND>_<OPTION>``
(``--help`` shows each name).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, Final

import click
import httpx

from .. import _defaults
from ..errors import IngressLoggingError
from ._config import ENV_DEBUG, ENV_MAX_ATTEMPTS, ENV_TIMEOUT, CliConfig

__all__ = ["AUTO_ENVVAR_PREFIX", "cli", "main", "pass_config"]

AUTO_ENVVAR_PREFIX: Final = "INGRESS_LOGGING"

CONTEXT_SETTINGS: Final[dict[str, Any]] = {
    "auto_envvar_prefix": AUTO_ENVVAR_PREFIX,
    "show_default": True,
    "help_option_names": ["-h", "--help"],
    "max_content_width": 100,
}


def one_line(exc: BaseException) -> str:
    """An exception as one readable line (no traceback, no token: see errors.py)."""
    if isinstance(exc, httpx.ConnectError):
        text = f"cannot connect to the server ({exc})"
    elif isinstance(exc, httpx.TimeoutException):
        text = "the server did not answer in time"
    elif isinstance(exc, IngressLoggingError | ValueError | OSError):
        text = str(exc) or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


class _Group(click.Group):
    """Turns unexpected exceptions into one line unless ``--debug`` is on."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None
        except Exception as exc:
            config = ctx.obj if isinstance(ctx.obj, CliConfig) else None
            if config is not None and config.debug:
                raise
            raise click.ClickException(one_line(exc)) from None


pass_config = click.make_pass_decorator(CliConfig)


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--url",
    envvar=_defaults.ENV_URL,
    show_envvar=True,
    metavar="TEMPLATE",
    help="Session URL template with '{session_id}'. Overrides --base-url.",
)
@click.option(
    "--base-url",
    envvar=_defaults.ENV_BASE_URL,
    show_envvar=True,
    metavar="URL",
    help=f"Service root; sessions live under /v1/session_ingress/session/ "
    f"[default: {_defaults.DEFAULT_BASE_API_URL}]",
)
@click.option(
    "--token",
    envvar=_defaults.ENV_TOKEN,
    show_envvar=True,
    metavar="TOKEN",
    help="Bearer token. Prefer the environment variable or --token-file: "
    "a command-line argument is visible to other users of the machine.",
)
@click.option(
    "--token-file",
    envvar=_defaults.ENV_TOKEN_FILE,
    show_envvar=True,
    type=click.Path(dir_okay=False),
    help="File holding the bearer token (re-read when it changes).",
)
@click.option(
    "--timeout",
    envvar=ENV_TIMEOUT,
    show_envvar=True,
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    help="Seconds to wait for one HTTP reply.",
)
@click.option(
    "--max-attempts",
    envvar=ENV_MAX_ATTEMPTS,
    show_envvar=True,
    type=click.IntRange(min=1),
    default=10,
    help="Attempts per entry before it counts as failed.",
)
@click.option(
    "--base-delay",
    envvar="INGRESS_LOGGING_BASE_DELAY",
    show_envvar=True,
    type=click.FloatRange(min=0),
    default=0.5,
    help="Seconds before the first retry; doubles per attempt, capped at 8 s.",
)
@click.option(
    "--allow-insecure-http",
    envvar="INGRESS_LOGGING_ALLOW_INSECURE_HTTP",
    show_envvar=True,
    is_flag=True,
    help="Allow sending the token over plain http to a host that is not loopback.",
)
@click.option(
    "--debug",
    envvar=ENV_DEBUG,
    show_envvar=True,
    is_flag=True,
    help="Show tracebacks and the library's debug log on stderr.",
)
@click.version_option(package_name="ingress-logging", prog_name="ingress-logging")
@click.pass_context
def cli(
    ctx: click.Context,
    url: str | None,
    base_url: str | None,
    token: str | None,
    token_file: str | None,
    timeout: float,
    max_attempts: int,
    base_delay: float,
    allow_insecure_http: bool,
    debug: bool,
) -> None:
    """Ship transcripts and logs to session-ingress, read them back, run a local server.

    \b
    Quick tour:
      ingress-logging serve --db ./ingress.db --token T     a local server
      ingress-logging ship session.jsonl                   upload (resumable)
      ingress-logging show SESSION                         read it back
      ingress-logging export SESSION -o copy.jsonl         save it as JSONL
      ingress-logging doctor                               check the setup
    """

    def origin(name: str, option: str, env: str) -> str:
        from_env = ctx.get_parameter_source(name) is click.core.ParameterSource.ENVIRONMENT
        return env if from_env else option

    if debug:
        logging.basicConfig(
            level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
        )
    ctx.obj = CliConfig(
        url=url or None,
        base_url=base_url or None,
        token=token or None,
        token_origin=origin("token", "--token", _defaults.ENV_TOKEN) if token else None,
        url_origin_hint=(
            origin("url", "--url", _defaults.ENV_URL)
            if url
            else origin("base_url", "--base-url", _defaults.ENV_BASE_URL)
            if base_url
            else None
        ),
        token_file=token_file or None,
        timeout=timeout,
        max_attempts=max_attempts,
        base_delay=base_delay,
        allow_insecure_http=allow_insecure_http,
        debug=debug,
    )


def _register_commands() -> None:
    from ._admin import migrate, sessions, tokens
    from ._doctor import doctor
    from ._read import export, show, tail
    from ._serve import serve
    from ._ship import ship

    for command in (serve, ship, show, tail, export, doctor, sessions, tokens, migrate):
        cli.add_command(command)


_register_commands()


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``ingress-logging``)."""
    cli.main(
        args=list(argv) if argv is not None else None,
        prog_name="ingress-logging",
        auto_envvar_prefix=AUTO_ENVVAR_PREFIX,
    )
