"""Every ```python sample in docs/ runs, against a real local server.

Rules (also in docs/index.md, "About the examples"):

* a ```python fence is a sample that runs: the blocks of one page run in
  order, in one interpreter, sharing names, with ``INGRESS_LOGGING_BASE_URL``
  and ``INGRESS_LOGGING_TOKEN`` pointing at a fresh local server, in an empty
  working directory, with outbound connections limited to loopback;
* a fragment that cannot run on its own (a signature, a hook body, a pytest
  test) is written as ```py, or put ``<!-- docs-test: skip -->`` on the line
  before its fence, or is listed in ``FRAGMENTS`` below with the reason (a
  listed block whose first line has changed is run again, and must work).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ingress_logging.server import IngressServer

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RUNNER = Path(__file__).with_name("sample_runner.py")
SKIP_MARK = "<!-- docs-test: skip -->"

#: (page, first line of the block) -> why it is not run on its own.
FRAGMENTS: dict[tuple[str, str], str] = {
    ("architecture.md", "from ingress_logging.server import run_server, IngressServer"): (
        "a contract sketch: sid is a placeholder"
    ),
    ("server.md", "from ingress_logging.server import run_server"): (
        "an attribute tour: wait_for_requests(3) waits for requests nobody sends"
    ),
    (
        "plugins.md",
        "PluginHost(pm=None, *, token=None, url_template=None, base_api_url=None, "
        "diagnostics=None)",
    ): "a signature, not a call",
    ("protocol.md", "from ingress_logging import SessionIngressClient, RetryPolicy"): (
        "an API tour: token, session_id, entry and url are placeholders"
    ),
    (
        "protocol.md",
        "pending = client.begin_append(session_id, entry, url=None)  # validates, serialises once",
    ): ("the step API as pseudo-code"),
    ("delivery.md", "from ingress_logging.delivery import DeliveryEngine, get_shared_engine"): (
        "an API tour: build_entry and record are placeholders"
    ),
    ("plugins.md", "import ingress_logging.plugins as plugins"): (
        "needs the worked example installed as a package; tests/plugins covers it"
    ),
    ("plugins.md", "import ingress_logging_acme"): "pytest tests for the worked example",
    ("plugins.md", "@hookimpl"): "hook bodies shown in the reference",
}


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_sample_runner", RUNNER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


python_blocks = _runner().python_blocks


def _first_line(source: str) -> str:
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


def _skipped_by_mark(text: str, line: int) -> bool:
    lines = text.splitlines()
    before = [ln.strip() for ln in lines[: line - 2] if ln.strip()]
    return bool(before) and before[-1] == SKIP_MARK


def plan(page: Path) -> tuple[list[int], list[tuple[int, str]]]:
    """Block numbers to run, and (number, reason) of the fragments."""
    text = page.read_text(encoding="utf-8")
    run: list[int] = []
    fragments: list[tuple[int, str]] = []
    for number, (line, source) in enumerate(python_blocks(text), start=1):
        reason = FRAGMENTS.get((page.name, _first_line(source)))
        if reason is None and _skipped_by_mark(text, line):
            reason = "marked skip in the page"
        if reason is None:
            run.append(number)
        else:
            fragments.append((number, reason))
    return run, fragments


PAGES = sorted(p for p in DOCS.glob("*.md") if python_blocks(p.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_samples_run(page: Path, ingress_server: IngressServer, tmp_path: Path) -> None:
    run, _ = plan(page)
    if not run:
        pytest.skip(f"{page.name} has only fragments")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGRESS_LOGGING_")}
    env.update(
        INGRESS_LOGGING_BASE_URL=ingress_server.base_url,
        INGRESS_LOGGING_TOKEN=ingress_server.token,
    )

    result = subprocess.run(
        [sys.executable, str(RUNNER), str(page), *map(str, run)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    marks = [ln for ln in result.stderr.splitlines() if ln.startswith("docs-sample-runner: ")]
    assert marks == [f"docs-sample-runner: ok {n}" for n in run]


OWN_PAGES = (
    "index.md",
    "getting-started.md",
    "configuration.md",
    "cli.md",
    "operations.md",
    "migrating.md",
)


@pytest.mark.parametrize("name", OWN_PAGES)
def test_guide_pages_have_no_fragments(name: str) -> None:
    page = DOCS / name
    if not page.exists():
        pytest.skip(f"{name} not written yet")
    assert plan(page)[1] == []
