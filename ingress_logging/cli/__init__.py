"""The ``ingress-logging`` command (extra ``cli``: click for commands, rich for progress).

Commands: ``serve`` (the local server), ``ship`` (JSONL transcripts in,
resumable), ``show`` / ``tail`` (read a session), ``export`` (a session out
as JSONL), ``doctor`` (check the setup). See ``docs/cli.md``.
"""

from __future__ import annotations

from ._app import cli, main

__all__ = ["cli", "main"]
