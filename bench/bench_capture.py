"""What ``--capture`` costs a session: the same display traffic replayed as fast as ryll takes
it, with and without capture (pcaps, metadata and the display video), alternating, on this
machine. The issue's bar: capture never slows the session by more than 10%.

The traffic is real: the bench boots the test VM's animation (640x480, 20 frames a second),
records 30 s of it with ryll's own capture (streaming off: QUIC/GLZ draws; streaming on:
MJPEG frames), and reads the server's display bytes back from the pcap. The server plays them
from its own process, as a real one would (a thread would share ryll's GIL). Besides capture
itself (pcaps alone, and pcaps with the video), the bug reports' traffic ring, which the
``ryll`` command keeps in every session, is measured the same way. A local server
(tests/session/spice_server.py) then plays them to a fresh session per run; a run ends when
the display channel has handled every message. Reported per mode: wall time and throughput
(median of the runs), process CPU time, and the ratio with/without.

Run: ``.venv/bin/python bench/bench_capture.py [--runs 9]`` (boots one VM per mode, ~10 min).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.session.spice_server import Peer, SpiceServer, main_script  # noqa: E402

from ryll.channels.context import ChannelContext  # noqa: E402
from ryll.diagnostics import pcap_read  # noqa: E402
from ryll.diagnostics.capture import Capture  # noqa: E402
from ryll.diagnostics.reports import BugReports, ReportOptions  # noqa: E402
from ryll.protocol.constants import LINK_HEADER_SIZE, ChannelType  # noqa: E402
from ryll.session.runner import FrontEnd, run_session  # noqa: E402
from ryll.session.session import Session  # noqa: E402
from ryll.session.target import Target  # noqa: E402
from ryll.testvm import TestVM  # noqa: E402

RECORD_S = 30.0  # long enough that a capture's fixed costs (files, the encoder) weigh as in a
# real session, not 13 times more
CHUNK = 64 * 1024


def record(streaming: str, workdir: Path, seconds: float, mode: str = "640x480",
           extra_cmdline: str = "") -> tuple[bytes, int]:
    """The server's display bytes (after the link phase) of ``seconds`` of the
    animation, and how many whole messages they hold."""
    out = workdir / f"record-{streaming}"
    with TestVM(vga="qxl", scene="animate", mode=mode, streaming_video=streaming,
                extra_cmdline=f"ryll.seconds={int(seconds) + 60} {extra_cmdline}") as vm:
        vm.wait_frame(1, timeout=90)

        async def go() -> None:
            session = Session(Target("127.0.0.1", vm.port), ChannelContext())
            await run_session(session, [Capture(out, video=False)], seconds)

        asyncio.run(go())
    data = (out / "display.pcap").read_bytes()
    server = b"".join(chunk for _at, _port, _flags, from_client, chunk
                      in pcap_read.tcp_payloads(data) if not from_client)
    reply_size = struct.unpack_from("<I", server, 12)[0]
    [conv] = pcap_read.read_conversations(data)
    messages = sum(1 for m in conv.messages if not m.sent)
    return server[LINK_HEADER_SIZE + reply_size + 4:], messages


class Replay:
    """A display script that plays the recording to each new connection."""

    def __init__(self, stream: bytes) -> None:
        self.stream = stream

    async def __call__(self, peer: Peer) -> None:
        reading = asyncio.ensure_future(peer.drain_forever())
        for pos in range(0, len(self.stream), CHUNK):
            peer.writer.write(self.stream[pos:pos + CHUNK])
            await peer.writer.drain()
        await reading


async def one_run(port: int, messages: int, kind: str, workdir: Path) -> tuple[float, float]:
    session = Session(Target("127.0.0.1", port), ChannelContext())
    front: list[FrontEnd] = []
    if kind == "bug-report ring":
        front.append(BugReports(ReportOptions(directory=workdir, disconnect=False)))
    elif not kind.startswith("without capture"):
        front.append(Capture(workdir, video=kind == "pcaps + video"))
    cpu0, start = time.process_time(), time.perf_counter()
    run = asyncio.ensure_future(run_session(session, front, None))
    while True:
        display = session.channel(ChannelType.DISPLAY)
        if display is not None and display.stats.messages_in >= messages:
            break
        if run.done():
            raise RuntimeError(f"the session ended early: {run.result().message}")
        await asyncio.sleep(0.002)
    wall = time.perf_counter() - start
    session.stop("replayed")
    await run
    return wall, time.process_time() - cpu0


# One round: every kind once, the baseline twice (its second run shows the measure's noise).
KINDS = ("without capture", "bug-report ring", "pcaps only", "pcaps + video",
         "without capture again")


def _serve(stream: bytes, ports: multiprocessing.Queue, stop: Any) -> None:
    """The replay server, in its own process: as a real server, it shares no GIL with ryll."""
    with SpiceServer({ChannelType.MAIN: main_script,
                      ChannelType.DISPLAY: Replay(stream)}) as server:
        ports.put(server.port)
        stop.wait()


def bench(streaming: str, runs: int, workdir: Path, seconds: float) -> None:
    stream, messages = record(streaming, workdir, seconds)
    mib = len(stream) / 2**20
    print(f"streaming-video={streaming}: {messages} display messages, {mib:.1f} MiB "
          f"({seconds:.0f} s of the animation)")
    ports: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    proc = multiprocessing.Process(target=_serve, args=(stream, ports, stop), daemon=True)
    proc.start()
    try:
        port = ports.get(timeout=30)
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
        # Warm up (imports, caches).
        asyncio.run(one_run(port, messages, KINDS[0], workdir))
        for i in range(runs):
            for n, kind in enumerate(KINDS):  # alternating: drift hits every kind alike
                results[kind].append(asyncio.run(
                    one_run(port, messages, kind, workdir / f"{streaming}-{n}-{i}")))
    finally:
        stop.set()
        proc.join(10)
    base = results[KINDS[0]]
    print(f"  {'':22} {'wall s':>8} {'MiB/s':>8} {'cpu s':>8} {'slowdown':>9} {'cpu':>7}")
    for kind in KINDS:
        wall = statistics.median(w for w, _ in results[kind])
        cpu = statistics.median(c for _, c in results[kind])
        # Each run against the run without capture of its own round (seconds apart, so the
        # machine's drift cancels), then the median of those ratios.
        slower = statistics.median(w / b for (w, _), (b, _) in zip(results[kind], base,
                                                                   strict=True))
        costlier = statistics.median(c / b for (_, c), (_, b) in zip(results[kind], base,
                                                                     strict=True))
        print(f"  {kind:22} {wall:8.3f} {mib / wall:8.1f} {cpu:8.3f} "
              f"{100 * (slower - 1):+8.1f}% {100 * (costlier - 1):+6.1f}%")
    print(f"  ({runs} rounds; slowdown: the median of each run's ratio to the run without "
          "capture of its round; the second run without capture is that measure's noise floor)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=RECORD_S,
                        help="how much of the animation to record and replay")
    parser.add_argument("--modes", default="off,all", help="streaming-video modes to record")
    args = parser.parse_args()
    if args.runs < 1 or args.seconds <= 0:
        parser.error("--runs and --seconds must be positive")
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        for mode in args.modes.split(","):
            bench(mode, args.runs, Path(tmp), args.seconds)


if __name__ == "__main__":
    main()
