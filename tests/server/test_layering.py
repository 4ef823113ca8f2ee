"""The server stands beside the client stack: it imports no front door."""

from __future__ import annotations

import ast
from pathlib import Path

import ingress_logging

PACKAGE = Path(ingress_logging.__file__).parent
FRONT_DOORS = ("cli", "handler", "otel", "transcript")


def _imported_modules(path: Path) -> set[str]:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def test_the_server_imports_no_front_door():
    doors = tuple(f"ingress_logging.{name}" for name in FRONT_DOORS)
    offenders = sorted(
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / "server").rglob("*.py")
        for name in _imported_modules(path)
        if name in doors or name.startswith(tuple(f"{door}." for door in doors))
    )
    assert offenders == []
