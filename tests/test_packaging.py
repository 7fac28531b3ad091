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


def test_published_as_pyryll_with_the_ryll_command() -> None:
    """PyPI's "ryll" is the Rust ryll's wheel: ours is "pyryll"; both commands run the CLI."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "pyryll"
    assert project["scripts"] == {"ryll": "ryll.cli.main:main", "pyryll": "ryll.cli.main:main"}


def test_the_installed_distribution_is_pyryll() -> None:
    import subprocess
    import sys
    from importlib.metadata import distribution

    dist = distribution("pyryll")
    assert {e.name for e in dist.entry_points if e.group == "console_scripts"} == {
        "ryll", "pyryll"}
    pyryll = Path(sys.executable).parent / "pyryll"  # the venv's scripts, PATH or not
    assert pyryll.is_file()
    out = subprocess.run([str(pyryll), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("ryll ")


def test_the_viewer_s_page_is_in_git_and_in_the_wheel() -> None:
    """Each file the viewer serves is tracked (a .gitignore rule once hid index.html) and
    matched by the wheel's package-data patterns."""
    import fnmatch
    import subprocess

    from ryll.viewer.server import PAGE_FILES

    tracked = set(subprocess.run(["git", "ls-files", "src/ryll/viewer/page"], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.split())
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["ryll.viewer"]
    for name in PAGE_FILES:
        assert f"src/ryll/viewer/page/{name}" in tracked, name
        assert any(fnmatch.fnmatch(f"page/{name}", pattern) for pattern in data), name
