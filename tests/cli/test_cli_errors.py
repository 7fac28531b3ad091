"""The ``ryll`` command's failure modes: one line on stderr, no traceback, a distinct exit code."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ryll.cli.main import main
from ryll.session.target import PASSWORD_ENV


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # nothing (pedantic dirs, summaries) lands in the repo


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.err.splitlines(), out.out


def assert_one_error_line(lines: list[str], *needles: str) -> None:
    assert len(lines) == 1, lines
    assert lines[0].startswith("ryll: error: ")
    assert "Traceback" not in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


def free_port() -> int:
    """A loopback port nobody listens on: bound once by us, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--headless"], "one of --direct, --file or --url is required"),
        (["--direct", "nohost", "--headless"], "expected HOST:PORT"),
        (["--direct", "h:99999", "--headless"], "outside 1..65535"),
        ([], "one of --direct, --file or --url is required"),
        (["--headless", "--bogus"], "--bogus"),
        (["--direct", "h:1", "--file", "x.vv", "--headless"], "not allowed with"),
        (["--direct", "h:1", "--headless", "--duration", "abc"], "abc"),
        (["--direct", "h:1", "--headless", "--duration", "0"], "--duration must be positive"),
        (["--direct", "h:1", "--headless", "--cache-size-mib", "-1"], "--cache-size-mib"),
        (["--file", "does-not-exist.vv", "--headless"], "cannot read"),
        (["--url", "file:///etc/passwd", "--headless"], "only http"),
    ],
)
def test_bad_usage_exits_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, out = run(argv, capsys)
    assert code == 2
    assert_one_error_line(err, needle)
    assert out == ""


def test_missing_password_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run(
        ["--direct", "127.0.0.1:5900", "--headless", "--password-file", "no/such/file"], capsys
    )
    assert code == 2
    assert_one_error_line(err, "cannot read password file", "no/such/file")


def test_nobody_listening_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code, err, out = run(["--direct", f"127.0.0.1:{port}", "--headless"], capsys)
    assert code == 3
    assert_one_error_line(err, "cannot connect", f"127.0.0.1:{port}")
    assert "connected to" not in out


def test_vv_file_pointing_nowhere_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    vv = tmp_path / "c.vv"
    vv.write_text(f"[virt-viewer]\ntype=spice\nhost=127.0.0.1\nport={port}\npassword=x\n")
    code, err, _ = run(["--file", str(vv), "--headless"], capsys)
    assert code == 3
    assert_one_error_line(err, "cannot connect")
    assert "password=x" not in err[0]


def test_version_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("ryll ")
