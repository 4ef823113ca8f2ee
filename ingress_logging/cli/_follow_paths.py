"""Which files the follower's arguments name, and which directories to watch for them."""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["expand", "watch_dirs"]


def expand(args: Sequence[str], pattern: str) -> list[str]:
    """The files the arguments name now: files, globs, files under directories."""
    found: set[str] = set()
    for arg in args:
        if glob.has_magic(arg):
            found.update(p for p in glob.glob(arg, recursive=True) if os.path.isfile(p))
        elif os.path.isdir(arg):
            for root, _dirs, files in os.walk(arg):
                found.update(os.path.join(root, f) for f in files if fnmatch.fnmatch(f, pattern))
        elif os.path.isfile(arg):
            found.add(arg)
    return sorted(os.path.abspath(p) for p in found)


def watch_dirs(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(directories watched with their subdirectories, directories watched alone).

    A directory argument is watched deep; a file's directory alone; a glob's
    fixed part deep when the pattern spans directories (``**``, ``*/x``).
    """
    deep: set[str] = set()
    flat: set[str] = set()
    for arg in args:
        if glob.has_magic(arg):
            parts = Path(arg).parts
            first_magic = next(i for i, p in enumerate(parts) if glob.has_magic(p))
            base = Path(*parts[:first_magic])
            target = str(base or Path("."))
            (deep if "**" in arg or len(parts) - len(base.parts) > 1 else flat).add(target)
        elif os.path.isdir(arg):
            deep.add(arg)
        else:
            flat.add(os.path.dirname(arg) or ".")
    return sorted(d for d in deep if os.path.isdir(d)), sorted(
        d for d in flat if os.path.isdir(d) and d not in deep
    )
