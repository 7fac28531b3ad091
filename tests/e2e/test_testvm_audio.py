"""The test VM's sound card and SPICE ports (issue 15's server side): ``TestVM(sound=True)``
with the guest playing and recording (``guest/audio.c``), ``TestVM(qmp_port=True)`` and
``TestVM(ports=[...])`` with the guest echoing a port (``guest/portecho.c``).

No SPICE client is needed for the guest to play or record: QEMU's spice audio backend takes the
samples (and gives silence) at the real rate whether or not a client listens. When Debian's
spice-gtk is there (python3-gi, gir1.2-spiceclientglib-2.0), one test uses it as the client:
it must hear the guest's 1 kHz tone, and the guest must hear its 440 Hz one.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ryll.testvm import TestVM

pytestmark = pytest.mark.e2e

SYSTEM_PYTHON = "/usr/bin/python3"
ECHO_PORT = "org.ryll.echo.0"
SOCKET_PORT = "org.ryll.sock.0"

# Both at once (full duplex), again and again: a client that connects whenever it likes hears
# a whole tone within 1.5 s and is heard by a whole recording within 2.5 s.
AUDIO_CMDLINE = "ryll.audio=play:1000:1,record:2 ryll.audio_repeat=0 ryll.audio_pause=0.5"


@pytest.fixture(scope="module")
def sound_vm() -> Iterator[TestVM]:
    with TestVM(sound=True, extra_cmdline=AUDIO_CMDLINE) as vm:
        vm.wait_serial(r"ryll: sound ready", timeout=90)
        yield vm


def test_guest_plays_and_records_without_a_client(sound_vm: TestVM) -> None:
    cmd = sound_vm.cmdline
    assert cmd[cmd.index("-audiodev") + 1] == "spice,id=ryllsnd"
    assert "intel-hda" in cmd and "hda-duplex,audiodev=ryllsnd" in cmd
    assert "ryll.sound=1" in sound_vm.kernel_cmdline
    played, _ = sound_vm.wait_audio("played", timeout=30)
    assert played == {"freq": 1000.0, "seconds": 1.0, "frames": 48000.0}
    recorded, _ = sound_vm.wait_audio("recorded", timeout=30)
    # Nobody sends anything: QEMU's backend records silence.
    assert recorded["seconds"] == 2.0 and recorded["rms"] < 1.0 and recorded["peak"] == 0
    log = sound_vm.serial_text()
    assert "ryll-audio: device /dev/snd/pcmC0D0p rate 48000 channels 2" in log
    assert "ryll-audio: device /dev/snd/pcmC0D0c rate 48000 channels 2" in log
    # The codec starts muted at volume 0 (which QEMU hands to SPICE clients): audio.c turns
    # QEMU's hda-duplex mixer up first.
    for line in ("ryll-audio: mixer 'Master Playback Switch' = on",
                 "ryll-audio: mixer 'Master Playback Volume' = ",
                 "ryll-audio: mixer 'Capture Switch' = on",
                 "ryll-audio: mixer 'Capture Volume' = "):
        assert line in log, line
    assert "ryll-audio: warning" not in log
    assert "ryll: error" not in log
    # The guest plays in real time (QEMU's HDA model paces it by the virtual clock).
    took = [float(line.split()[-2]) for line in log.splitlines() if "play took" in line]
    assert took and all(0.8 < t < 3.0 for t in took), took


# ---------------------------------------------------------------------------------------------
# spice-gtk as the client

# Runs under Debian's python3: links every channel with audio on, keeps the playback channel's
# samples (per PLAYBACK_START..STOP stretch) and answers RECORD_START with a 440 Hz tone.
SPICE_GTK_PEER = r"""
import ctypes, json, math, struct, sys, time
import gi
gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject, SpiceClientGLib as Spice

on = GObject.Object.connect  # Session.connect and Channel.connect shadow GObject's
host, port, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
loop = GLib.MainLoop()
session = Spice.Session(uri="spice://%s:%s" % (host, port), enable_audio=True)
out = {"playback": [], "record_starts": 0, "sent_frames": 0}
rec = {}

def pb_start(ch, fmt, channels, rate):
    out["playback"].append({"format": fmt, "channels": channels, "rate": rate, "data": b""})

def pb_data(ch, data, size):
    raw = ctypes.string_at(data, size) if isinstance(data, int) else bytes(data)[:size]
    if out["playback"]:
        out["playback"][-1]["data"] += raw

def tone():
    n = rec["rate"] // 50
    buf = bytearray()
    for i in range(n):
        v = int(12000 * math.sin(2 * math.pi * 440 * (rec["pos"] + i) / rec["rate"]))
        buf += struct.pack("<h", v) * rec["channels"]
    rec["pos"] += n
    out["sent_frames"] += n
    arr = (ctypes.c_char * len(buf)).from_buffer(buf)
    rec["ch"].send_data(ctypes.addressof(arr), len(buf), int(time.monotonic() * 1000) & 0xffffffff)
    return rec["on"]

def rec_start(ch, fmt, channels, rate):
    out["record_starts"] += 1
    rec.update(ch=ch, channels=channels, rate=rate, pos=0, on=True)
    GLib.timeout_add(20, tone)

def rec_stop(ch):
    rec["on"] = False

def new_channel(s, ch):
    if isinstance(ch, Spice.PlaybackChannel):
        on(ch, "playback-start", pb_start)
        on(ch, "playback-data", pb_data)
    if isinstance(ch, Spice.RecordChannel):
        on(ch, "record-start", rec_start)
        on(ch, "record-stop", rec_stop)
    Spice.Channel.connect(ch)

on(session, "channel-new", new_channel)
Spice.Session.connect(session)
GLib.timeout_add(int(seconds * 1000), loop.quit)
loop.run()
session.disconnect()
stretches = []
for p in out["playback"]:
    data = p.pop("data")
    samples = struct.unpack("<%dh" % (len(data) // 2), data[: len(data) // 2 * 2])
    left = [x for x in samples[:: max(1, p["channels"])]]
    frames = len(left)
    # A stretch may begin and end with ~10 ms of low, noisy junk around the tone (many zero
    # crossings): measure the frequency without 20 ms at either end.
    edge = p["rate"] // 50
    steady = left[edge:-edge] if frames > 4 * edge else left
    crossings = sum(1 for a, b in zip(steady, steady[1:]) if (a < 0) != (b < 0))
    p.update(frames=frames,
             freq=crossings / 2 / (len(steady) / p["rate"]) if steady else 0,
             rms=math.sqrt(sum(x * x for x in left) / frames) if frames else 0)
    stretches.append(p)
out["playback"] = stretches
print(json.dumps(out))
"""


def _have_spice_gtk() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = (
        "import gi; gi.require_version('SpiceClientGLib', '2.0'); "
        "from gi.repository import SpiceClientGLib"
    )
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30
                              ).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_a_spice_gtk_client_hears_the_tone_and_is_heard(sound_vm: TestVM) -> None:
    if not _have_spice_gtk():
        pytest.skip("spice-gtk for Debian's python3 missing: "
                    "apt-get install python3-gi gir1.2-spiceclientglib-2.0")
    after = sound_vm.serial_offset()
    peer = subprocess.Popen(
        [SYSTEM_PYTHON, "-c", SPICE_GTK_PEER, sound_vm.host, str(sound_vm.port), "6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # A recording that began after the client connected and while it sent its tone.
        peaks = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            recorded, after = sound_vm.wait_audio("recorded", timeout=20, after=after)
            peaks.append(recorded)
            if recorded["peak"] == 440:
                break
        assert peaks[-1]["peak"] == 440 and peaks[-1]["rms"] > 1000, peaks
        stdout, stderr = peer.communicate(timeout=30)
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.communicate()
    assert peer.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["record_starts"] >= 1 and result["sent_frames"] > 0
    whole = [p for p in result["playback"] if p["frames"] >= 40000]  # 1 s at 48 kHz, nearly
    assert whole, result["playback"]
    for p in whole:
        assert p["rate"] == 48000 and p["channels"] == 2
        assert abs(p["freq"] - 1000) < 20 and p["rms"] > 5000, p


# ---------------------------------------------------------------------------------------------
# ports


def test_qmp_port_and_a_guest_port_echo() -> None:
    sockdir = Path(tempfile.mkdtemp(prefix="ryll-echo-"))
    sock_path = sockdir / "echo.sock"
    try:
        # A second virtio-serial port on a unix socket lets the test talk to guest/portecho.c
        # without a SPICE client; the SPICE port (ryllport0) gets the same program.
        extra = [
            "-chardev", f"socket,id=ryllechosock,path={sock_path},server=on,wait=off",
            "-device", f"virtserialport,chardev=ryllechosock,name={SOCKET_PORT}",
        ]
        with TestVM(qmp_port=True, ports=[ECHO_PORT], extra_args=extra,
                    extra_cmdline=f"ryll.echo={ECHO_PORT},{SOCKET_PORT}") as vm:
            cmd = vm.cmdline
            assert "spiceport,id=ryllqmp,name=org.qemu.monitor.qmp.0" in cmd
            assert "chardev=ryllqmp,mode=control" in cmd
            assert f"spiceport,id=ryllport0,name={ECHO_PORT}" in cmd
            assert f"virtserialport,chardev=ryllport0,name={ECHO_PORT}" in cmd
            assert cmd.count("virtio-serial-pci") == 1
            chardevs = {c["label"]: c for c in vm.qmp.execute("query-chardev")}
            assert chardevs["ryllqmp"]["filename"] == "spiceport"
            assert chardevs["ryllport0"]["filename"] == "spiceport"

            vm.wait_serial(rf"ryll-echo: up {ECHO_PORT} \(/dev/vport\d+p\d+\)", timeout=60)
            vm.wait_serial(rf"ryll-echo: up {SOCKET_PORT} \(/dev/vport\d+p\d+\)", timeout=60)
            # The guest holds the SPICE-backed port open.
            deadline = time.monotonic() + 10
            while not chardevs["ryllport0"]["frontend-open"] and time.monotonic() < deadline:
                time.sleep(0.2)
                chardevs = {c["label"]: c for c in vm.qmp.execute("query-chardev")}
            assert chardevs["ryllport0"]["frontend-open"]

            after = vm.serial_offset()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(20)
                s.connect(str(sock_path))
                s.sendall(b"hello ryll 15\n")
                got = b""
                while not got.endswith(b"\n"):
                    chunk = s.recv(4096)
                    assert chunk, f"the echo port closed after {got!r}"
                    got += chunk
            assert got == b"HELLO RYLL 15\n"
            vm.wait_serial(rf"ryll-echo: {SOCKET_PORT} echoed 14 bytes", timeout=20,
                           after=after)
            assert "ryll: error" not in vm.serial_text()
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)
