"""What one display message costs ryll, without sockets: recorded full-screen traffic replayed
straight into a display channel, in this process.

bench_session measures a whole session against spice-gtk; this isolates the part that grows
with the message rate, the sans-IO core and the canvas (framing, parsing, dispatch, decode,
the surface write, damage), so a change to it is measured in a few seconds. The traffic is
real: the test VM's full-screen 800x600 animation (``ryll.full=1``), recorded once with
ryll's own capture (streaming off: QUIC and GLZ draws of the strips QEMU's display sends)
and cached under ~/.cache/ryll-bench. Reported: messages, CPU time per message (median of
the runs) and throughput in messages and megapixels a second.

Run: ``.venv/bin/python bench/bench_pipeline.py [--runs 5] [--seconds 10] [--rerecord]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_capture import record  # noqa: E402

from ryll.channels.context import ChannelContext  # noqa: E402
from ryll.channels.display import DisplayChannel  # noqa: E402

CACHE = Path.home() / ".cache" / "ryll-bench"
CHUNK = 64 * 1024


def traffic(seconds: float, rerecord: bool) -> bytes:
    path = CACHE / f"fullscreen-off-{int(seconds)}s.bin"
    if rerecord or not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            data, _ = record("off", Path(tmp), seconds, mode="800x600",
                             extra_cmdline="ryll.full=1")
        path.write_bytes(data)
    return path.read_bytes()


def replay(data: bytes) -> tuple[float, int, int]:
    """(CPU seconds, messages, pixels drawn) of one replay into a fresh display channel."""
    ch = DisplayChannel(0, ChannelContext())
    ch.start()
    messages = pixels = 0
    t0 = time.process_time()
    for pos in range(0, len(data), CHUNK):
        for message in ch.feed(data[pos:pos + CHUNK]):
            for event in ch.handle(message):
                rect = getattr(event, "rect", None)
                if rect is not None:
                    pixels += (rect.bottom - rect.top) * (rect.right - rect.left)
            messages += 1
        ch.data_to_send()
    return time.process_time() - t0, messages, pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0, help="of traffic to record")
    parser.add_argument("--rerecord", action="store_true")
    args = parser.parse_args()
    if args.runs < 1 or args.seconds <= 0:
        parser.error("--runs and --seconds must be positive")
    data = traffic(args.seconds, args.rerecord)
    runs = [replay(data) for _ in range(args.runs)]
    cpu = statistics.median(c for c, _, _ in runs)
    best = min(c for c, _, _ in runs)
    _, messages, pixels = runs[0]
    print(f"{len(data) / 1e6:.1f} MB, {messages} messages, {pixels / 1e6:.1f} Mpixel drawn, "
          f"{args.seconds:g} s of guest time")
    print(f"CPU {cpu:.3f} s a replay (median of {args.runs}): {1e6 * cpu / messages:.1f} us a "
          f"message, {messages / cpu:.0f} messages/s, {pixels / cpu / 1e6:.1f} Mpixel/s, "
          f"{100 * cpu / args.seconds:.1f}% of a core at the guest's rate")
    # On a shared machine the fastest run is the one least disturbed by neighbours.
    print(f"best of {args.runs}: {best:.3f} s, {1e6 * best / messages:.1f} us a message")


if __name__ == "__main__":
    main()
