"""``--control-socket`` on the command line: a path it must not use is a usage error before
anything connects, and the socket is removed when the connection fails."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ryll.cli.main import build_parser, main


@pytest.fixture
def sockdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ryllcli-"))
    monkeypatch.chdir(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_option_parses() -> None:
    args = build_parser().parse_args(["--headless", "--control-socket", "/tmp/x.sock"])
    assert args.control_socket == Path("/tmp/x.sock")


def test_regular_file_is_refused_untouched(sockdir: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    precious = sockdir / "precious"
    precious.write_text("keep me")
    code = main(["--direct", f"127.0.0.1:{_dead_port()}", "--headless",
                 "--control-socket", str(precious)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(err) == 1 and "not a socket" in err[0]
    assert precious.read_text() == "keep me"


def test_socket_removed_when_the_connection_fails(sockdir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = sockdir / "ctl.sock"
    code = main(["--direct", f"127.0.0.1:{_dead_port()}", "--headless",
                 "--control-socket", str(path)])
    assert code == 3, capsys.readouterr().err
    assert not os.path.lexists(path)
