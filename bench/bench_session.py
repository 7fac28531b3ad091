"""What a session costs: ryll headless against spice-gtk on the same guest, in one run.

The test VM's 800x600 animation at 20 frames a second (QEMU 7.2, TCG), with streaming-video
off (QUIC/GLZ draws) and all (MJPEG streams). One VM per mode; the clients take turns on it,
alternating, each for SECONDS after a settle of 3 s: ``ryll --headless`` and spice-gtk 0.42
(bench/spicegtk_peer.py: a SpiceSession through PyGObject that links every channel and decodes
every update into its primary surface). Per client: CPU over the window as a share of one core
(the process's user + system time, from psutil), peak RSS (VmHWM), and ryll's ratio to
spice-gtk. ryll runs with its traffic ring off (``--traffic-ring-mib 0``), as spice-gtk keeps
no such thing; the scene is the test VM's ``animate`` with ``full=1``: the whole 800x600
picture scrolls every frame under the moving box (``--partial``: only the box and a band
move).

Run: ``.venv/bin/python bench/bench_session.py [--seconds 30] [--rounds 2]`` (needs Debian's
python3-gi and gir1.2-spiceclientglib-2.0, which scripts/setup.sh does not install: the suite
does not need them).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ryll.testvm import TestVM  # noqa: E402

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"
SETTLE_S = 3.0


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def measure(cmd: list[str], seconds: float) -> tuple[float, float, str]:
    """(CPU share of one core over ``seconds`` after the settle, peak RSS in MiB, what the
    client printed last)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ps = psutil.Process(proc.pid)
        time.sleep(SETTLE_S)
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ''
            raise RuntimeError(f"{cmd[:3]} ended early: {err}")
        t0 = ps.cpu_times()
        start = time.monotonic()
        time.sleep(seconds)
        t1 = ps.cpu_times()
        wall = time.monotonic() - start
        rss = peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return (t1.user + t1.system - t0.user - t0.system) / wall, rss, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", default="off,all")
    parser.add_argument("--partial", action="store_true",
                        help="the box-and-band animation instead of the full-screen one")
    args = parser.parse_args()
    if args.seconds <= 0 or args.rounds < 1:
        parser.error("--seconds and --rounds must be positive")
    if not Path(SYSTEM_PYTHON).exists():
        parser.error(f"{SYSTEM_PYTHON} is needed for spice-gtk (python3-gi)")
    total = (args.seconds + SETTLE_S) * 2 * args.rounds + 120
    print(f"{'streaming-video':16} {'client':10} {'CPU':>7} {'peak RSS':>10}")
    for mode in args.modes.split(","):
        with TestVM(vga="qxl", scene="animate", mode="800x600", streaming_video=mode,
                    extra_cmdline=f"ryll.seconds={int(total)}"
                    + ("" if args.partial else " ryll.full=1")) as vm:
            vm.wait_frame(20, timeout=90)
            clients = {
                # The traffic ring off: ryll's bug reports keep one (--traffic-ring-mib,
                # 50 MiB by default), which spice-gtk has nothing like.
                "ryll": [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}",
                         "--headless", "-q", "--traffic-ring-mib", "0"],
                "spice-gtk": [SYSTEM_PYTHON, str(HERE / "spicegtk_peer.py"), "127.0.0.1",
                              str(vm.port), str(args.seconds + SETTLE_S + 30)],
            }
            got: dict[str, list[tuple[float, float]]] = {k: [] for k in clients}
            for _ in range(args.rounds):
                for name, cmd in clients.items():  # alternating: drift hits both alike
                    cpu, rss, last = measure(cmd, args.seconds)
                    got[name].append((cpu, rss))
                    if name == "spice-gtk":  # it saw the animation: "invalidates N ..."
                        print(f"  spice-gtk: {last}")
            for name in clients:
                cpu = statistics.mean(c for c, _ in got[name])
                rss = max(r for _, r in got[name])
                print(f"{mode:16} {name:10} {100 * cpu:6.1f}% {rss:7.1f} MiB")
            ratio = (statistics.mean(c for c, _ in got["ryll"])
                     / statistics.mean(c for c, _ in got["spice-gtk"]))
            rss_ratio = max(r for _, r in got["ryll"]) / max(r for _, r in got["spice-gtk"])
            print(f"{mode:16} {'ryll/gtk':10} {ratio:6.2f}x {rss_ratio:6.2f}x")


if __name__ == "__main__":
    main()
