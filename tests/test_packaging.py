"""What the runtime wheel holds: the client, not the test VM or the test-only encoders (the
README's commands and the tests run those from the checkout, through the editable install).
Checked on the build configuration itself, the same that ``pip wheel .`` reads."""

from __future__ import annotations

import runpy
import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_s_packages_leave_out_the_test_vm() -> None:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_packages(where=str(ROOT / find["packages"]["find"]["where"][0]),
                             exclude=find["packages"]["find"]["exclude"])
    assert "ryll" in packages and "ryll.codecs" in packages and "ryll.session" in packages
    assert not [p for p in packages if p.startswith("ryll.testvm")]
    assert find["include-package-data"] is False  # no .pyx/.c sources, no guest programs


def test_the_wheel_s_extensions_leave_out_the_test_encoders() -> None:
    setup_py = runpy.run_path(str(ROOT / "setup.py"), run_name="ryll_setup")
    runtime = {e.name for e in setup_py["extensions"](False)}
    dev = {e.name for e in setup_py["extensions"](True)}
    assert "ryll.codecs._quic" in runtime and "ryll.render._pixels" in runtime
    assert "ryll.codecs._lz_enc" not in runtime
    assert dev - runtime == {"ryll.codecs._lz_enc"}
