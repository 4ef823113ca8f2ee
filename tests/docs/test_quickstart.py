"""The README's first command: examples/quickstart.py, run as a user runs it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quickstart_example", QUICKSTART)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quickstart_runs_and_verifies_every_chain() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(QUICKSTART), "--threads", "3", "--records", "20"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("quickstart-")]
    assert [(row[0], row[-2], row[-1]) for row in rows] == [
        ("quickstart-web", "60", "ok"),
        ("quickstart-jobs", "60", "ok"),
        ("quickstart-otel", "60", "ok"),
    ]
    assert "every chain complete" in result.stdout
    assert elapsed < 120


def _chain(n: int) -> list[dict]:
    entries, parent = [], None
    for i in range(n):
        me = str(uuid.uuid4())
        extra = {"thread_no": 0, "seq": i}
        entries.append({"type": "system", "uuid": me, "parentUuid": parent, "extra": extra})
        parent = me
    return entries


def test_verification_catches_loss_duplication_and_reordering() -> None:
    quickstart = _load()

    def problems(entries: list[dict]) -> list[str]:
        check = quickstart.Check("s", "test", 1, 5, entries=entries)
        quickstart.verify(check, 5)
        return check.problems

    good = _chain(5)
    assert problems(good) == []
    assert any("4 entries, expected 5" in p for p in problems(good[:2] + good[3:]))
    assert any("duplicate uuids" in p for p in problems([*good[:4], good[3]]))
    swapped = [good[0], good[2], good[1], good[3], good[4]]
    assert any("parentUuid" in p for p in problems(swapped))
    reseq = _chain(5)
    reseq[1]["extra"]["seq"], reseq[2]["extra"]["seq"] = 2, 1
    assert any("out of order" in p for p in problems(reseq))
