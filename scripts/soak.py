"""Soak test (not run in CI): stay connected to an animating test VM for a while and report
whether any channel dropped.

    .venv/bin/python scripts/soak.py --minutes 10 [--streaming-video all]
    .venv/bin/python scripts/soak.py --minutes 10 --inputs

``--inputs`` soaks the input path instead: the guest's ``input`` scene with a USB tablet, and
ryll moving the pointer every 50 ms, pressing a key every 2 s and typing a word every 10 s
for the whole time; the report adds what the guest saw and the latency figures.

Exit status 0 when the session was still whole at the end (every channel linked, no error),
1 otherwise. Prints a stats line every 30 s and a JSON report at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time

from ryll.channels.context import ChannelContext
from ryll.session.session import Session
from ryll.session.target import Target
from ryll.testvm import TestVM

SOAK_WORD = "soak"


async def drive_inputs(session: Session, sent: dict[str, int]) -> None:
    """Pointer, keys and text for the whole soak (client mouse mode with the USB tablet)."""
    while not (session.input.ready and any(d.marks for d in session.display_channels())):
        await asyncio.sleep(0.1)
    step = 0
    while True:
        step += 1
        session.input.mouse_move((step * 7) % 640, (step * 5) % 480)
        sent["moves"] += 1
        if step % 40 == 0:
            await session.input.press_key("space")
            sent["keys"] += 1
        if step % 200 == 0:
            await session.input.type_text(SOAK_WORD + "\n")
            sent["words"] += 1
        await asyncio.sleep(0.05)


async def soak(vm: TestVM, seconds: float, inputs: bool = False) -> dict[str, object]:
    session = Session(Target(vm.host, vm.port), ChannelContext())
    await session.connect()
    loop = asyncio.get_running_loop()
    loop.call_later(seconds, session.stop, "soak finished")
    started = time.monotonic()
    sent = {"moves": 0, "keys": 0, "words": 0}
    driver = asyncio.ensure_future(drive_inputs(session, sent)) if inputs else None

    async def ticker() -> None:
        while True:
            await asyncio.sleep(30)
            bi, bo = session.totals()
            print(f"soak: t={time.monotonic() - started:.0f}s channels={len(session.channels)} "
                  f"in={bi} out={bo} gaps={len(session.ctx.gaps)}", flush=True)

    tick = asyncio.ensure_future(ticker())
    end = await session.wait()
    tick.cancel()
    if driver is not None:
        driver.cancel()
    extra: dict[str, object] = {}
    if inputs:
        serial = vm.serial_path.read_text(errors="replace")
        extra = {
            "inputs_sent": sent,
            # Linux keycodes: 57 space (one per key press), 31 "s" (one per word).
            "guest_space_presses": serial.count("ryll: key 57 down"),
            "guest_words_typed": serial.count("ryll: key 31 down"),
            "guest_pointer_reports": serial.count("ryll: pointer abs"),
            "latency": session.latency.summary(),
        }
    return {
        **extra,
        "seconds": round(time.monotonic() - started, 1),
        "end": {"reason": end.reason, "message": end.message},
        "channels": {
            f"{i.channel.name}:{cid}": {
                "messages_in": i.channel.stats.messages_in,
                "bytes_in": i.channel.stats.bytes_in,
                "pings_answered": i.channel.stats.pings,
                "acks_sent": i.channel.stats.acks_sent,
            }
            for (_, cid), i in sorted(session.channels.items())
        },
        "gaps": session.ctx.gaps.counts(),
        "dropped": end.reason != "stopped",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--vga", default="qxl")
    p.add_argument("--streaming-video", default=None)
    p.add_argument("--inputs", action="store_true", help="soak the input path (see above)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("ryll.gaps").setLevel(logging.ERROR)
    scene = "input" if args.inputs else "animate"
    with TestVM(vga=args.vga, scene=scene, streaming_video=args.streaming_video,
                usb_tablet=args.inputs) as vm:
        vm.wait_frame(1, timeout=90)
        report = asyncio.run(soak(vm, args.minutes * 60, args.inputs))
        report["vm_running_at_end"] = vm.running
    print(json.dumps(report, indent=2))
    return 1 if report["dropped"] else 0


if __name__ == "__main__":
    sys.exit(main())
