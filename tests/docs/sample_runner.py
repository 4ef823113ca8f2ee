"""Run the ```python samples of one docs page, in order, in one namespace.

Used by ``test_samples.py`` as ``python sample_runner.py PAGE.md N [N...]``
(block numbers, 1-based, counted over the page's ```python fences). Blocks
share a namespace, as a reader pasting them one after another into one
interpreter would. Before anything runs, outbound connections are limited to
loopback: a sample that names ``api.example.com`` fails to deliver (and the
library reports it) instead of reaching out. Prints ``docs-sample-runner: ok N``
on stderr per block; on failure prints the page and line and exits 1.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

MARK = "docs-sample-runner:"
FENCE = re.compile(r"^```python\s*$")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, source) of every ```python fence in a page."""
    blocks: list[tuple[int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            start = i + 1
            j = start
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            blocks.append((start + 1, "\n".join(lines[start:j]) + "\n"))
            i = j
        i += 1
    return blocks


def _loopback_only() -> None:
    real_getaddrinfo = socket.getaddrinfo

    def is_loopback(host: object) -> bool:
        if host in (None, "localhost", b"localhost"):
            return True
        try:
            return ipaddress.ip_address(str(host)).is_loopback
        except ValueError:
            return False

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            raise socket.gaierror(f"docs samples may only reach loopback, not {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = guarded  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    page = Path(argv[0])
    wanted = [int(n) for n in argv[1:]]
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    _loopback_only()
    namespace: dict[str, Any] = {"__name__": "__docs_sample__"}
    for number in wanted:
        line, source = blocks[number - 1]
        try:
            code = compile(source, f"{page}:{line}", "exec")
            exec(code, namespace)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED block {number} at {page}:{line}", file=sys.stderr)
            return 1
        print(f"{MARK} ok {number}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
