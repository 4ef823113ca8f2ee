"""``pip install ingress-logging[server]`` is enough for ``ingress-logging serve``.

The issue documents the shell command ``ingress-logging serve ...`` for the
server extra, and that console script is the click app. This test runs the
command in a child interpreter where every third-party module outside the
core dependencies and the ``server`` extra is made unimportable, so a missing
requirement shows up as the ImportError a user of a fresh install would see.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

# Runs in the child: hide every top-level module that is not stdlib and not
# provided by an allowed distribution, then run the console-script entry point.
_CHILD = """
import importlib.abc, importlib.metadata, sys
allowed = set(sys.argv[1].split(","))
owners = importlib.metadata.packages_distributions()
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top == "ingress_logging":
            return None
        dists = {d.lower().replace("_", "-").replace(".", "-") for d in owners.get(top, [])}
        if dists and not dists & allowed:
            raise ModuleNotFoundError(f"No module named {top!r} (not in the server extra)")
        return None
sys.meta_path.insert(0, Block())
from ingress_logging.cli import main
main(["serve", "--help"])
"""


def _installed_closure(roots: list[str]) -> set[str]:
    """Distribution names of ``roots`` and everything they require, as installed."""
    names: set[str] = set()
    pending = [Requirement(r) for r in roots]
    while pending:
        req = pending.pop()
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in names:
            continue
        names.add(key)
        names.add(name)
        for line in requires(name) or []:
            sub = Requirement(line)
            envs = [{"extra": e} for e in req.extras or {""}]
            if sub.marker is None or any(sub.marker.evaluate(env) for env in envs):
                pending.append(sub)
    return {n for n in names if "[" not in n}


def _allowed(extra: str | None) -> set[str]:
    """What a fresh ``pip install ingress-logging[extra]`` brings (besides us).

    Our own requirements come from pyproject.toml (the source of truth, even
    before a reinstall); those of the dependencies from their installed metadata.
    """
    meta = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    me = canonicalize_name(meta["name"])
    roots: list[str] = []
    pending, seen = [f"{me}[{extra}]" if extra else me], set()
    while pending:
        req = Requirement(pending.pop())
        if canonicalize_name(req.name) != me:
            roots.append(str(req))
            continue
        if not seen:
            pending.extend(meta["dependencies"])
        for e in req.extras - seen:
            pending.extend(meta["optional-dependencies"][e])
        seen |= req.extras | {""}
    return _installed_closure(roots)


def test_server_extra_covers_the_serve_command():
    allowed = _allowed("server")
    # Sanity: the blocker really hides something the dev install has.
    assert "click" in {d.lower() for ds in packages_distributions().values() for d in ds}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, ",".join(sorted(allowed))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--db" in result.stdout
    assert "--token" in result.stdout


def test_core_alone_runs_python_m_server():
    core = _allowed(None)
    child = _CHILD.replace(
        'from ingress_logging.cli import main\nmain(["serve", "--help"])',
        'from ingress_logging.server.__main__ import main\nsys.exit(main(["--help"]))',
    )
    assert child != _CHILD
    result = subprocess.run(
        [sys.executable, "-c", child, ",".join(sorted(core))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--db" in result.stdout
