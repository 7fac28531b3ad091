"""Bug reports from a real session against the test SPICE server (tests/session/spice_server):
a pedantic zip for a gap, with the message's hexdump and the display channel's real state; a
manual report with a region screenshot; auto-snapshots pruned to their cap; a disconnect
report when the server drops a channel; every zip with the Rust ryll's files, its pcap
readable back, and neither the password nor the encrypted ticket in any byte written."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ryll.diagnostics.pcap_read import read_conversations
from ryll.diagnostics.reports import (
    BugReports,
    Region,
    ReportOptions,
    ReportRequest,
    prune,
    stamp,
    unique,
)
from ryll.gaps import hexdump
from ryll.protocol.constants import BaseServer, ChannelType, DisplayServer, Ropd, SurfaceFmt
from ryll.session.runner import run_session
from ryll.session.session import Session
from ryll.session.target import Target
from tests.render import builders as B
from tests.session.spice_server import Peer, SpiceServer, channels_list, main_init, mini

PASSWORD = "s3cret-Pa55word"
UNKNOWN = bytes(range(40))  # the body of a message no channel knows (opcode 200)
COMMON_FILES = {"metadata.json", "session.json", "channel-state.json", "traffic.pcap",
                "notifications.json", "runtime-metrics.json"}


def notify(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return mini(BaseServer.NOTIFY, struct.pack("<QIIII", 0, 1, 0, 0, len(raw)) + raw)


async def _main(peer: Peer) -> None:
    await peer.send(main_init() + channels_list((ChannelType.DISPLAY, 0)) +
                    notify("a word from the server"))
    await peer.drain_forever()


class Display:
    def __init__(self) -> None:
        self.drop = asyncio.Event()

    async def __call__(self, peer: Peer) -> None:
        reading = asyncio.ensure_future(peer.drain_forever())
        await peer.send(
            mini(DisplayServer.SURFACE_CREATE, B.surface_create(0, 64, 48, SurfaceFmt.FMT_32_xRGB))
            + mini(DisplayServer.DRAW_FILL, B.draw_fill((10, 20, 30, 50), Ropd.OP_PUT, 0xFF0000))
            + mini(DisplayServer.MARK) + mini(200, UNKNOWN))
        await self.drop.wait()
        reading.cancel()
        peer.writer.close()


def files_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


async def _until(check: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_every_kind_of_report_from_a_session(tmp_path: Path) -> None:
    display = Display()
    reports, pedantic = tmp_path / "reports", tmp_path / "pedantic"
    options = ReportOptions(directory=reports, pedantic_dir=pedantic, metrics_window_s=0.2,
                            auto_snapshot_interval=0.4, auto_snapshot_cap=2)
    front = BugReports(options)

    async def scenario(server: SpiceServer) -> tuple[Session, Path]:
        session = Session(Target("127.0.0.1", server.port, password=PASSWORD))
        run = asyncio.ensure_future(run_session(session, [front], None))
        await _until(lambda: list(pedantic.glob("ryll-pedantic-display-hexdump-200-*.zip")))
        assert session.reports is not None
        manual = await session.reports.write(ReportRequest(
            "manual", "display", description="the red box is wrong",
            region=Region(0, 15, 5, 40, 30), triggered_uptime=session.uptime))
        with pytest.raises(ValueError, match="not within display 0"):
            await session.reports.write(ReportRequest("manual", region=Region(0, 60, 0, 10, 10)))
        await _until(lambda: front.auto_pruned >= 2)
        server.loop.call_soon_threadsafe(display.drop.set)
        end = await run
        assert end.reason == "server_closed"
        return session, manual

    with SpiceServer({ChannelType.MAIN: _main, ChannelType.DISPLAY: display}) as server:
        session, manual = asyncio.run(scenario(server))
        tickets = [p.ticket for p in server.peers]
    assert len(tickets) == 2 and all(len(t) == 128 and any(t) for t in tickets)

    # Pedantic: the gap's message and the display channel's real state.
    [ped] = pedantic.glob("*.zip")
    files = files_of(ped)
    assert set(files) == COMMON_FILES | {"screenshot.png", "hexdump.txt"}
    meta = json.loads(files["metadata.json"])
    assert (meta["report_type"], meta["channel"], meta["gap_key"]) == (
        "pedantic", "display", "display:hexdump:200")
    assert meta["target"]["port"] == session.target.port
    assert files["hexdump.txt"].decode() == hexdump(UNKNOWN) + "\n"
    state = json.loads(files["channel-state.json"])
    assert state["channel"] == "display" and state["surfaces"][0]["width"] == 64

    # Manual: the region's screenshot is that region of the surface (red box at 20..50 x,
    # 10..30 y); notifications hold the server's NOTIFY; metrics are real.
    files = files_of(manual)
    assert set(files) == COMMON_FILES | {"screenshot.png", "screenshot-region.png"}
    meta = json.loads(files["metadata.json"])
    assert meta["description"] == "the red box is wrong"
    assert meta["region"] == {"display": 0, "x": 15, "y": 5, "width": 40, "height": 30}
    full = np.asarray(Image.open(io.BytesIO(files["screenshot.png"])).convert("RGB"))
    region = np.asarray(Image.open(io.BytesIO(files["screenshot-region.png"])).convert("RGB"))
    assert full.shape == (48, 64, 3) and region.shape == (30, 40, 3)
    assert (region == full[5:35, 15:55]).all()
    assert (full[10:30, 20:50] == (255, 0, 0)).all() and (full[0, 0] == 0).all()
    notes = json.loads(files["notifications.json"])
    kinds = [n["kind"] for n in notes]
    assert "server_notified" in kinds and "channel_linked" in kinds
    assert any(n.get("text") == "a word from the server" for n in notes)
    runtime = json.loads(files["runtime-metrics.json"])
    assert runtime["available"] and runtime["process"]["rss_bytes"] > 10 * 1024 * 1024
    assert any(t["name"] == "MainThread" for t in runtime["threads"])
    convs = {c.name: c for c in read_conversations(files["traffic.pcap"])}
    assert set(convs) == {"main", "display"}
    assert [m.type for m in convs["display"].messages if not m.sent][-1] == 200

    # Auto-snapshots: the newest two kept.
    autos = sorted((reports / "auto-snapshots").glob("ryll-auto-snapshot-*.zip"))
    assert len(autos) == 2
    assert json.loads(files_of(autos[-1])["metadata.json"])["report_type"] == "auto_snapshot"
    assert set(json.loads(files_of(autos[-1])["channel-state.json"])) == {"main:0",
                                                                         "display:0"}

    # Disconnect: the dropped display channel.
    [drop] = reports.glob("ryll-disconnect-display-0-*.zip")
    files = files_of(drop)
    assert "disconnect-cause.json" in files
    cause = json.loads(files["disconnect-cause.json"])
    assert cause["channel"] == "display:0" and "closed" in cause["reason"]
    assert set(cause["channels"]) == {"main:0", "display:0"}

    # No secret in any byte written, in any form.
    secrets = [PASSWORD.encode(), PASSWORD.encode("utf-16-le"), *tickets,
               *(t[:16] for t in tickets)]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            blobs = [raw, *files_of(path).values()] if path.suffix == ".zip" else [raw]
            for blob in blobs:
                for secret in secrets:
                    assert secret not in blob, path


def test_names_never_collide(tmp_path: Path) -> None:
    first = tmp_path / "ryll-bugreport-x.zip"
    assert unique(first) == first
    first.write_bytes(b"")
    assert unique(first).name == "ryll-bugreport-x-2.zip"


def test_prune_keeps_the_newest_within_count_and_bytes(tmp_path: Path) -> None:
    for i in range(6):
        (tmp_path / f"ryll-auto-snapshot-2026-01-0{i + 1}T00-00-00Z-T+{i}.0s.zip").write_bytes(
            bytes(100 * (i + 1)))
    assert prune(tmp_path, cap=4, budget=10_000) == 2
    assert prune(tmp_path, cap=4, budget=1100) == 2  # 500 + 600 left
    assert sorted(p.name[19:29] for p in tmp_path.iterdir()) == ["2026-01-05", "2026-01-06"]
    assert prune(tmp_path, cap=4, budget=10) == 1  # the newest stays, whatever its size
    assert [p.name[19:29] for p in tmp_path.iterdir()] == ["2026-01-06"]


def test_the_file_name_time_has_no_colons() -> None:
    from datetime import UTC, datetime
    assert stamp(datetime(2026, 5, 18, 20, 37, 42, tzinfo=UTC)) == "2026-05-18T20-37-42Z"
