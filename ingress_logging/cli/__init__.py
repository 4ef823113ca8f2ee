"""The ``ingress-logging`` command (extra ``cli``: click for commands, rich for progress).

Commands: ``serve`` (the local server), ``ship`` (JSONL transcripts in,
resumable), ``show`` / ``tail`` (read a session), ``export`` (a session out
as JSONL), ``doctor`` (check the setup). See ``docs/cli.md``.

The console script is installed with the core package, so ``main`` imports
the commands lazily: without the ``cli`` extra it says, in one line, what to
install instead of ending in an ``ImportError`` traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._app import cli

__all__ = ["cli", "main"]

#: Top-level modules the ``cli`` extra brings.
_EXTRA_MODULES: Final = frozenset({"click", "rich"})


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``ingress-logging``)."""
    try:
        from ._app import main as run
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in _EXTRA_MODULES:
            raise
        sys.stderr.write(
            f"Error: the ingress-logging command needs the 'cli' extra ({missing} is not "
            "installed): pip install 'ingress-logging[cli]'\n"
        )
        raise SystemExit(1) from None
    run(argv)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from ._app import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
