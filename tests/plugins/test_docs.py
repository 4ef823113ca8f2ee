"""docs/plugins.md documents every hook, with its exact arguments (as datasette checks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingress_logging.plugins import new_plugin_manager

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
HOOKS = [
    (name, tuple(caller.spec.argnames))
    for name, caller in vars(new_plugin_manager(load_entrypoints=False).hook).items()
    if caller.spec is not None
]


def test_there_are_hooks_to_check() -> None:
    assert {name for name, _ in HOOKS} == {
        "ingress_auth_token",
        "ingress_session_url",
        "ingress_request_headers",
        "ingress_diagnostic",
        "ingress_prepare_entry",
    }


@pytest.mark.parametrize(("name", "argnames"), HOOKS, ids=[name for name, _ in HOOKS])
def test_every_hook_is_documented_with_its_signature(name: str, argnames: tuple[str, ...]) -> None:
    text = DOCS.read_text(encoding="utf-8")
    heading = f"### {name}({', '.join(argnames)})"
    assert heading in text.splitlines(), f"docs/plugins.md lacks the heading {heading!r}"
    assert f'<a id="{name}"></a>' in text
    section = text.split(heading, 1)[1].split("\n### ", 1)[0]
    for arg in argnames:
        assert re.search(rf"^- `{arg}` - ", section, re.MULTILINE), f"{name}: {arg} undocumented"


def test_every_hookspec_has_a_docstring() -> None:
    from ingress_logging import hookspecs

    for name, _ in HOOKS:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc) > 200, name
        assert ".. versionadded::" in doc


def _python_blocks(after: str) -> list[str]:
    text = DOCS.read_text(encoding="utf-8").split(after, 1)[1]
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def test_the_worked_example_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The example plugin and its example tests, executed as the docs show them."""
    import types

    from ingress_logging.plugins import PluginHost

    plugin_src, _register_src, tests_src = _python_blocks("## A complete worked example")[:3]
    plugin = types.ModuleType("ingress_logging_acme")
    exec(compile(plugin_src, "docs/plugins.md:acme", "exec"), plugin.__dict__)
    monkeypatch.setitem(__import__("sys").modules, "ingress_logging_acme", plugin)

    example_tests: dict[str, object] = {}
    exec(compile(tests_src, "docs/plugins.md:tests", "exec"), example_tests)
    example_tests["test_eu_sessions_go_to_the_eu_endpoint"]()  # type: ignore[operator]
    example_tests["test_entries_are_tagged"](monkeypatch)  # type: ignore[operator]

    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="acme")
    host = PluginHost(pm, token="ctor")
    token_file = tmp_path / "vault-token"
    token_file.write_text("vault-1\n")
    monkeypatch.setenv("ACME_VAULT_TOKEN_FILE", str(token_file))
    assert host.auth_token("s1") == "vault-1"
    token_file.write_text("vault-2\n")
    assert host.auth_token("s1") == "vault-2"
    host.diagnostic("warn", "delivery_dropped", {"count": 3, "reason": "queue_full"})
    assert plugin.DROPPED == 3
