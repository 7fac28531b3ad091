"""Many sessions in one process: what each added session costs, idle, against one test VM.

``ryll.connect`` is called N times in one process (one asyncio loop, as a Locust worker or a
script runs them) against the test VM's static scene, with spice-server keeping every client
(QEMU with SPICE_DEBUG_ALLOW_MC=1: ``TestVM(multi_client=True)``). Reported: RSS before the
first session and after every step of sessions (so the RSS an added session costs), then
the process's CPU over an idle window as a share of one core, per session and as idle
sessions per core, and whether every PING the server sent each channel was answered.

Run: ``.venv/bin/python bench/bench_many_sessions.py [--sessions 100] [--idle 60]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ryll  # noqa: E402
from ryll.testvm import TestVM  # noqa: E402


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def run(port: int, sessions: int, step: int, idle_s: float) -> None:
    base = rss_mib()
    print(f"sessions {0:4d}: RSS {base:6.1f} MiB")
    vms = []
    curve = [(0, base)]
    for start in range(0, sessions, step):
        batch = [ryll.connect(f"127.0.0.1:{port}", timeout=60)
                 for _ in range(min(step, sessions - start))]
        vms += await asyncio.gather(*batch)
        await asyncio.gather(*(vm.wait_for_display(timeout=60) for vm in vms[start:]))
        curve.append((len(vms), rss_mib()))
        print(f"sessions {len(vms):4d}: RSS {curve[-1][1]:6.1f} MiB", flush=True)
    per = (curve[-1][1] - curve[1][1]) / max(1, len(vms) - curve[1][0])
    print(f"RSS per added session (after the first {curve[1][0]}): {per:.2f} MiB; "
          f"the first {curve[1][0]} cost {curve[1][1] - base:.1f} MiB")
    await asyncio.sleep(5)  # the links' own work done
    proc = psutil.Process()
    t0, w0 = proc.cpu_times(), time.monotonic()
    await asyncio.sleep(idle_s)
    t1, wall = proc.cpu_times(), time.monotonic() - w0
    cpu = (t1.user + t1.system - t0.user - t0.system) / wall
    print(f"idle {idle_s:g} s with {len(vms)} sessions: CPU {100 * cpu:.2f}% of a core, "
          f"{100 * cpu / len(vms):.3f}% a session, "
          f"{len(vms) / cpu if cpu > 0 else float('inf'):.0f} idle sessions a core")
    got = answered = 0
    for vm in vms:
        for info in vm.session.channels.values():
            got += info.channel.stats.by_message.get("ping", 0)
            answered += info.channel.stats.pings
    dropped = sum(1 for vm in vms if vm.closed)
    print(f"PINGs: {got} received, {answered} answered; sessions ended early: {dropped}")
    await asyncio.gather(*(vm.close() for vm in vms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    if args.sessions < 1 or args.step < 1 or args.idle <= 0:
        parser.error("--sessions, --step and --idle must be positive")
    with TestVM(vga="qxl", scene="static", mode="640x480", multi_client=True) as vm:
        vm.wait_serial("ryll: idle", timeout=90)
        asyncio.run(run(vm.port, args.sessions, args.step, args.idle))


if __name__ == "__main__":
    main()
