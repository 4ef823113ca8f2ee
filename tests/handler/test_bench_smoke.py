"""benchmarks/bench_handler.py still runs (tiny sizes; the figures themselves are not asserted)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_bench_handler_runs_and_delivers_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    # Importable by name, so the spawned server process can unpickle its target.
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("bench_handler")
    lines: list[str] = []
    ratio = module.run(records=300, rounds=1, report=lines.append)
    assert ratio > 0
    engine_line = next(line for line in lines if line.startswith("engine:"))
    # warm-up (300) + one round (300): all of it delivered, nothing dropped
    assert "submitted=600 delivered=600 dropped=0 failed=0" in engine_line
