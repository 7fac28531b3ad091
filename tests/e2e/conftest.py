"""Shared helpers for end-to-end tests: run the real ``ryll`` command against the test VM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("qemu-system-x86_64") is None and not os.environ.get("CI"):
        skip = pytest.mark.skip(reason="qemu-system-x86_64 not installed (see README)")
        for item in items:
            if "e2e" in str(item.fspath):
                item.add_marker(skip)


@dataclass
class RyllRun:
    returncode: int
    stdout: str
    stderr: str
    summary: dict | None


def run_ryll(
    args: list[str],
    tmp_path: Path,
    *,
    password: str | None = None,
    timeout: float = 90.0,
) -> RyllRun:
    summary_path = tmp_path / "summary.json"
    env = {k: v for k, v in os.environ.items() if k != "RYLL_PASSWORD"}
    if password is not None:
        env["RYLL_PASSWORD"] = password
    proc = subprocess.run(
        [sys.executable, "-m", "ryll", *args, "--summary-json", str(summary_path)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path,
    )
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return RyllRun(proc.returncode, proc.stdout, proc.stderr, summary)


def error_lines(stderr: str) -> list[str]:
    """The error lines ryll prints on stderr (``ryll: error: ...``); the info records are
    plain ``ryll: ...`` lines and warnings ``ryll: warning: ...``."""
    return [line for line in stderr.splitlines() if line.startswith("ryll: error:")]


API_DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
DOCS_ADDRESS = "127.0.0.1:5900"


def doc_examples() -> list[str]:
    """docs/api.md's Python examples, as written."""
    import re

    return re.findall(r"```python\n(.*?)```", API_DOCS.read_text(), re.S)


def run_doc_example(marker: str, port: int, tmp_path: Path,
                    timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the one docs/api.md example containing ``marker`` as the script it is, against the
    test VM on ``port`` (its address in place of the docs' 127.0.0.1:5900), in ``tmp_path``;
    asserts that it exits 0."""
    [code] = [c for c in doc_examples() if marker in c]
    assert DOCS_ADDRESS in code
    script = tmp_path / "example.py"
    script.write_text(code.replace(DOCS_ADDRESS, f"127.0.0.1:{port}"))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=timeout, cwd=tmp_path)
    assert run.returncode == 0, f"the example with {marker!r} failed:\n{code}\n{run.stderr}"
    return run

