"""Soak test (not run in CI): stay connected to an animating test VM for a while and report
whether any channel dropped.

    .venv/bin/python scripts/soak.py --minutes 10 [--streaming-video all]

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


async def soak(vm: TestVM, seconds: float) -> dict[str, object]:
    session = Session(Target(vm.host, vm.port), ChannelContext())
    await session.connect()
    loop = asyncio.get_running_loop()
    loop.call_later(seconds, session.stop, "soak finished")
    started = time.monotonic()

    async def ticker() -> None:
        while True:
            await asyncio.sleep(30)
            bi, bo = session.totals()
            print(f"soak: t={time.monotonic() - started:.0f}s channels={len(session.channels)} "
                  f"in={bi} out={bo} gaps={len(session.ctx.gaps)}", flush=True)

    tick = asyncio.ensure_future(ticker())
    end = await session.wait()
    tick.cancel()
    return {
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
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("ryll.gaps").setLevel(logging.ERROR)
    with TestVM(vga=args.vga, scene="animate", streaming_video=args.streaming_video) as vm:
        vm.wait_frame(1, timeout=90)
        report = asyncio.run(soak(vm, args.minutes * 60))
        report["vm_running_at_end"] = vm.running
    print(json.dumps(report, indent=2))
    return 1 if report["dropped"] else 0


if __name__ == "__main__":
    sys.exit(main())
