"""Links in docs/ point at something, and mkdocs.yml's nav names real pages.

mkdocs itself only validates links between pages inside docs/; some pages
also link to files elsewhere in the repository (a plugin's README), which is
why mkdocs.yml reports unknown targets as info. This test checks every
relative link instead: the target file exists in the repository, and a link
to a page inside docs/ names a page that is in the nav.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
NAV_PAGE = re.compile(r"^\s*-\s*[^:]+:\s*(\S+\.md)\s*$", re.M)


def nav_pages() -> list[str]:
    return NAV_PAGE.findall((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]


def test_nav_names_only_existing_pages() -> None:
    pages = nav_pages()
    assert "index.md" in pages
    assert [p for p in pages if not (DOCS / p).is_file()] == []


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    nav = set(nav_pages())
    broken = []
    for target in relative_links(page):
        path = target.split("#", 1)[0]
        resolved = (page.parent / path).resolve()
        if not resolved.exists():
            broken.append(target)
        elif resolved.parent == DOCS and resolved.suffix == ".md" and resolved.name not in nav:
            broken.append(f"{target} (not in mkdocs.yml nav)")
    assert broken == []
