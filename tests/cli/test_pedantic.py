"""--pedantic: one bug-report zip per new gap key, with metadata, hexdump and channel state."""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path

import pytest
from tests.fixtures.loader import body, server_records

from ryll import __version__
from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.cli.pedantic import MAX_REPORTS, PedanticReporter
from ryll.gaps import GapRegistry, hexdump
from ryll.protocol.constants import ChannelType, DisplayServer
from ryll.protocol.framing import MessageWriter
from ryll.session.target import parse_direct

MONITORS = body(ChannelType.DISPLAY, DisplayServer.MONITORS_CONFIG)
NAME_RE = r"ryll-pedantic-display-hexdump-126-\d{8}T\d{6}\.\d{6}Z\.zip"


def reporter(tmp_path: Path, uptime: float = 12.3456) -> PedanticReporter:
    target = parse_direct("127.0.0.1:5900:5901").with_password("never-in-a-report")
    return PedanticReporter(tmp_path / "reports", target.describe(), lambda: uptime)


def report_new(reg: GapRegistry, rep: PedanticReporter) -> None:
    """What the Pedantic front end does with each GapOpened: one report per new key."""
    for gap in reg.take_new():
        rep(gap)


def read_zip(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name).decode() for name in zf.namelist()}


def test_report_zip_for_a_new_gap(tmp_path: Path) -> None:
    rep = reporter(tmp_path)
    reg = GapRegistry()
    state = {"channel": "display", "marks": 1}
    reg.unknown_message("display", 126, MONITORS, state)
    report_new(reg, rep)
    reg.unknown_message("display", 126, MONITORS, state)  # not new: no second zip
    report_new(reg, rep)
    assert len(rep.written) == 1
    path = rep.written[0]
    assert path.parent == tmp_path / "reports"
    assert re.fullmatch(NAME_RE, path.name), path.name
    files = read_zip(path)
    assert set(files) == {"metadata.json", "hexdump.txt", "channel-state.json"}
    meta = json.loads(files["metadata.json"])
    assert meta["ryll_version"] == __version__
    assert (meta["target_host"], meta["target_port"], meta["target_tls_port"]) == (
        "127.0.0.1", 5900, 5901
    )
    assert meta["gap_key"] == "display:hexdump:126"
    assert meta["session_uptime_s"] == 12.346
    assert "126" in meta["gap_detail"]
    assert files["hexdump.txt"] == hexdump(MONITORS) + "\n"
    assert json.loads(files["channel-state.json"]) == state
    for text in files.values():
        assert "never-in-a-report" not in text


def test_gap_without_data_has_no_hexdump_file(tmp_path: Path) -> None:
    rep = reporter(tmp_path)
    reg = GapRegistry()
    reg.register("main:unimpl:agent_data", "not yet")
    report_new(reg, rep)
    files = read_zip(rep.written[0])
    assert set(files) == {"metadata.json", "channel-state.json"}
    assert json.loads(files["channel-state.json"]) == {}


def test_reports_from_a_real_display_channel(tmp_path: Path) -> None:
    rep = reporter(tmp_path)
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    writer = MessageWriter(True)
    for r in server_records(ChannelType.DISPLAY)[:6]:  # set_ack ... mark
        ch.receive_data(writer.build(r.opcode, r.body))
    report_new(ctx.gaps, rep)
    n_before = len(rep.written)
    # An opcode spice.proto reserves (127-301): nothing handles it.
    ch.receive_data(writer.build(200, MONITORS))
    report_new(ctx.gaps, rep)
    assert len(rep.written) == n_before + 1
    path = rep.written[-1]
    assert path.name.startswith("ryll-pedantic-display-hexdump-200-")
    state = json.loads(read_zip(path)["channel-state.json"])
    assert state["channel"] == "display"
    assert state["marks"] == 1
    assert state["surfaces"][0]["width"] == 640
    assert state["monitors"][0]["height"] == 480


def test_cap_of_50_reports(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rep = reporter(tmp_path)
    reg = GapRegistry()
    with caplog.at_level(logging.WARNING, logger="ryll.pedantic"):
        for i in range(MAX_REPORTS + 7):
            reg.register(f"display:unimpl:thing{i}")
        report_new(reg, rep)
    assert MAX_REPORTS == 50
    assert len(rep.written) == 50
    assert len(list((tmp_path / "reports").iterdir())) == 50
    assert rep.skipped == 7
    warnings = [r for r in caplog.records if r.name == "ryll.pedantic"]
    assert len(warnings) == 1 and "not writing more" in warnings[0].getMessage()


def test_unwritable_directory_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the directory should be")
    rep = reporter(tmp_path)
    reg = GapRegistry()
    with caplog.at_level(logging.ERROR, logger="ryll.pedantic"):
        gap = reg.register("display:hexdump:126", data=MONITORS)
        report_new(reg, rep)
    assert gap is not None
    assert rep.written == []
    assert any("cannot write" in r.getMessage() for r in caplog.records)
