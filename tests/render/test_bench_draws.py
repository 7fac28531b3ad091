"""Smoke test of bench/bench_draws.py: its ``--quick`` path runs every case once and each one
draws (changes pixels). Nothing here looks at the timings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_draws.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_draws", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_a_row_per_case_and_every_case_draws(
        capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    names = [case.name for case in bench.cases(256, 192)]
    assert len(names) == len(set(names))
    bench.main(["--quick"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("256x192") and lines[1].split()[0] == "case"
    rows = lines[2:]
    assert [row[:28].rstrip() for row in rows] == names
    for row in rows:
        area, changed = (int(v) for v in row[28:].split()[:2])
        assert area > 0 and changed > 0, row
    for prefix in ("FILL", "ROP3", "TRANSPARENT", "ALPHA_BLEND", "BLEND", "TEXT", "STROKE",
                   "COMPOSITE", "COPY_BITS", "cursor ALPHA", "cursor MONO"):
        assert any(name.startswith(prefix) for name in names), prefix
