"""The real ``ryll`` command against a hostile SPICE server (tests/session/spice_server.py):
after a clean link the display channel sends every reproducer of tests/test_hostile_inputs.py,
a flood of surfaces past the memory budget, unknown and truncated messages, and floods of
PINGs; the main channel keeps PINGing. ryll must stay up to the end of its --duration, answer
every PING, name each problem as a gap (none ``internal``), exit 0 with its summary, and never
grow past its memory budget plus the interpreter's own baseline."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tests.render import builders as B
from tests.session.spice_server import Peer, SpiceServer, main_script, mini
from tests.test_budget import _stream_create
from tests.test_hostile_inputs import _jpeg_claiming, _stroke_body, raw_bitmap

from ryll.protocol.constants import (
    BaseClient,
    BaseServer,
    BitmapFmt,
    ChannelType,
    DisplayServer,
    Ropd,
    SurfaceFmt,
)

BUDGET_MIB = 256
PINGS = 2000


def _display_reproducers() -> list[bytes]:
    src = B.Image(pixels=np.full((8, 8, 4), 90, np.uint8))
    out = [
        mini(DisplayServer.SURFACE_CREATE, B.surface_create(0, 640, 480,
                                                            SurfaceFmt.FMT_32_xRGB, 1)),
        mini(DisplayServer.MARK),
        # ROP3 with an empty source rect, and with a box of 16000x16000
        mini(DisplayServer.DRAW_ROP3, B.draw_rop3((0, 0, 32, 32), src, (0, 0, 0, 8), 0xCA,
                                                  color=1)),
        mini(DisplayServer.DRAW_ROP3, B.draw_rop3((0, 0, 16000, 16000), src, (0, 0, 8, 8),
                                                  0xCC)),
        # a 24-bit BITMAP of 60000x60000 with stride 0
        mini(DisplayServer.DRAW_COPY, B.draw_copy(
            (0, 0, 64, 64), raw_bitmap(BitmapFmt.FMT_24BIT, 60000, 60000, 0, b"\0" * 16),
            (0, 0, 64, 64), Ropd.OP_PUT)),
        # a dashed XOR stroke of 2000 polylines, and 20,000 clip rects
        mini(DisplayServer.DRAW_STROKE, _stroke_body(2000, 480)),
        mini(DisplayServer.DRAW_FILL, B.draw_fill(
            (0, 0, 480, 640), Ropd.OP_PUT, 0x10, clip=[(i % 7, i % 5, 480, 640)
                                                       for i in range(20_000)])),
        # a stream whose JPEG claims 16384x16384, and a stream far larger than the surface
        mini(DisplayServer.STREAM_CREATE, _stream_create(1, 64, 64, (0, 0, 64, 64))),
        mini(DisplayServer.STREAM_DATA, struct.pack("<III", 1, 0, len(jpeg := _jpeg_claiming(
            16384, 16384))) + jpeg),
        # an opcode nobody defines, and a draw cut short
        mini(4242, b"hostile"),
        mini(DisplayServer.DRAW_COPY, b"\0" * 7),
    ]
    # sixteen 8192x4096 surfaces: 2 GiB asked of a 256 MiB budget
    out += [mini(DisplayServer.SURFACE_CREATE, B.surface_create(
        sid, 8192, 4096, SurfaceFmt.FMT_32_xRGB, 0)) for sid in range(1, 17)]
    return out


async def _display(peer: Peer) -> None:
    # An ACK window of 20, then thousands of messages sent without waiting for an ACK.
    await peer.send(mini(BaseServer.SET_ACK, struct.pack("<II", 1, 20)))
    for message in _display_reproducers():
        await peer.send(message)
    await peer.send(b"".join(mini(BaseServer.PING, struct.pack("<IQ", i, i))
                             for i in range(PINGS)))
    await peer.drain_forever()


async def _main(peer: Peer) -> None:
    await main_script(peer, ((ChannelType.DISPLAY, 0),))


def test_ryll_survives_a_hostile_server_within_its_budget(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    with SpiceServer({ChannelType.MAIN: _main, ChannelType.DISPLAY: _display}) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{server.port}",
             "--headless", "--duration", "8", "--max-memory-mib", str(BUDGET_MIB),
             "--summary-json", str(summary), "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
        try:
            # While the display channel chews, the main channel answers PINGs at once.
            deadline = time.monotonic() + 20
            while server.peer(ChannelType.DISPLAY) is None or \
                    server.peer(ChannelType.MAIN) is None:
                assert time.monotonic() < deadline, "ryll never linked the display channel"
                time.sleep(0.05)
            main = server.peer(ChannelType.MAIN)
            assert main is not None
            asked = time.monotonic()
            server.run(main.send(mini(BaseServer.PING, struct.pack("<IQ", 77, 1))))
            while not any(op == BaseClient.PONG for op, _ in main.received):
                assert time.monotonic() - asked < 2.0, "the main channel stopped answering"
                time.sleep(0.01)
            _, status, usage = os.wait4(proc.pid, 0)
            stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
        finally:
            if proc.poll() is None:
                proc.kill()
        display = server.peer(ChannelType.DISPLAY)
        assert display is not None and not server.errors, server.errors
    assert os.waitstatus_to_exitcode(status) == 0, stderr.decode()
    pongs = [b for op, b in display.received if op == BaseClient.PONG]
    assert len(pongs) == PINGS, "every PING after the reproducers was answered"
    acks = [op for op, _ in display.received if op == BaseClient.ACK]
    sent = 1 + len(_display_reproducers()) + PINGS
    assert len(acks) == (sent - 1) // 20  # one per window, as the flood arrived
    s = json.loads(summary.read_text())
    gaps = s["gaps"]
    assert not [k for k in gaps if ":internal:" in k or ":error:" in k], gaps
    for key in ("display:malformed:rop3_src_size", "display:decode_failure:bitmap:too_large",
                "display:unimpl:draw_stroke_too_complex", "display:decode_failure:mjpeg:size",
                "display:hexdump:4242", "display:malformed:draw_copy",
                "display:over_budget:surface_create"):
        assert key in gaps, (key, gaps)
    memory = s["memory"]
    assert memory["limit_bytes"] == BUDGET_MIB << 20
    assert memory["peak_bytes"] <= memory["limit_bytes"]
    assert memory["refused"]["surface_create"] >= 15
    # ru_maxrss is in KiB on Linux: the budget plus the interpreter with numpy, PyAV,
    # Pillow and cryptography loaded (about 100 MiB here), with room for the read buffers.
    assert usage.ru_maxrss * 1024 < (BUDGET_MIB + 200) << 20, usage.ru_maxrss
    assert b"Traceback" not in stderr
    assert stdout == b""  # -q: warnings and errors only, on stderr
    assert s["end"]["message"] == "duration elapsed"
