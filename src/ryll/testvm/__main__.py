"""python -m ryll.testvm {build,run,screendump}: the test VM by hand."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ryll.testvm.build import ensure_artifacts
from ryll.testvm.certs import make_tls_dir
from ryll.testvm.errors import TestVMError
from ryll.testvm.images import write_image
from ryll.testvm.vm import SCENES, VGAS, TestVM


def _vm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vga", choices=VGAS, default="qxl")
    p.add_argument(
        "--scene",
        choices=(*SCENES, "none"),
        default="static",
        help="the guest's workload; none = no kernel (SeaBIOS screen)",
    )
    p.add_argument("--mode", default="640x480", help="first display mode, WxH")
    p.add_argument("--heads", type=int, default=1,
                   help="QXL devices (SPICE display channels); scene 'heads' draws on each")
    p.add_argument("--mode2", help="second mode of the 'modes' scene (guest default 1024x768)")
    p.add_argument("--hold", type=int, help="seconds before the 'modes' scene switches")
    p.add_argument(
        "--animate-seconds", type=int, help="the 'animate' scene stops after this many seconds"
    )
    p.add_argument("--extra-cmdline", default="", help="more kernel command line words")
    p.add_argument("--image-compression")
    p.add_argument("--streaming-video")
    p.add_argument("--zlib-glz-wan-compression")
    p.add_argument("--jpeg-wan-compression")
    p.add_argument("--password-file", type=Path, help="file whose first line is the SPICE password")
    p.add_argument(
        "--tls-dir",
        type=Path,
        help="x509 dir for a TLS port (made with a fresh CA if it has no certificates)",
    )
    p.add_argument("--workdir", type=Path, help="keep the serial log, QEMU log and QMP socket here")
    p.add_argument("--sound", action="store_true",
                   help="an HDA sound card (SPICE playback and record channels); with "
                   "--extra-cmdline 'ryll.audio=play:1000:2' the guest plays a tone")
    p.add_argument("--qmp-port", action="store_true",
                   help="QEMU's QMP monitor as the SPICE port org.qemu.monitor.qmp.0")
    p.add_argument("--port", action="append", default=[], metavar="NAME",
                   help="a guest-facing SPICE port NAME (repeatable); with --extra-cmdline "
                   "'ryll.echo=NAME' the guest echoes it uppercased")
    p.add_argument("--cache-dir", type=Path)


def _make_vm(args: argparse.Namespace) -> TestVM:
    words = [args.extra_cmdline] if args.extra_cmdline else []
    if args.mode2:
        words.append(f"ryll.mode2={args.mode2}")
    if args.hold is not None:
        words.append(f"ryll.hold={args.hold}")
    if args.animate_seconds is not None:
        words.append(f"ryll.seconds={args.animate_seconds}")
    password = None
    if args.password_file is not None:
        lines = args.password_file.read_text().splitlines()
        password = lines[0] if lines else ""
    if args.tls_dir is not None and not (args.tls_dir / "server-cert.pem").exists():
        subject = make_tls_dir(args.tls_dir)
        print(f"made a CA and server certificate in {args.tls_dir} (subject {subject})")
    return TestVM(
        vga=args.vga,
        scene=None if args.scene == "none" else args.scene,
        mode=args.mode,
        heads=args.heads,
        extra_cmdline=" ".join(words),
        password=password,
        tls_dir=args.tls_dir,
        image_compression=args.image_compression,
        streaming_video=args.streaming_video,
        zlib_glz_wan_compression=args.zlib_glz_wan_compression,
        jpeg_wan_compression=args.jpeg_wan_compression,
        workdir=args.workdir,
        sound=args.sound,
        qmp_port=args.qmp_port,
        ports=args.port,
        cache_dir=args.cache_dir,
    )


def _cmd_build(args: argparse.Namespace) -> int:
    art = ensure_artifacts(args.cache_dir)
    print(f"kernel: {art.kernel}")
    print(f"initrd: {art.initrd}")
    print(f"kernel package: {art.kernel_package}")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cmd_run(args: argparse.Namespace) -> int:
    # SIGTERM behaves like Ctrl+C, so the VM is stopped cleanly either way.
    signal.signal(signal.SIGTERM, _interrupt)
    vm = _make_vm(args)
    try:
        vm.start()
        print(f"SPICE on {vm.host}:{vm.port}", flush=True)
        if vm.tls_port is not None:
            print(f"SPICE TLS on {vm.host}:{vm.tls_port}", flush=True)
        print(f"serial log: {vm.serial_path}", flush=True)
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        while deadline is None or time.monotonic() < deadline:
            if not vm.running:
                print("QEMU exited", file=sys.stderr)
                return 1
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        vm.stop()
    return 0


def _cmd_screendump(args: argparse.Namespace) -> int:
    with _make_vm(args) as vm:
        if vm.scene is None:
            time.sleep(args.delay if args.delay is not None else 3.0)
        else:
            vm.wait_serial(args.wait, timeout=args.timeout)
            if args.delay:
                time.sleep(args.delay)
        image = vm.screendump()
    write_image(args.out, image)
    print(f"{args.out}: {image.shape[1]}x{image.shape[0]}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Boot the test VM and run ryll headless against it: the README's first command."""
    signal.signal(signal.SIGTERM, _interrupt)
    with _make_vm(args) as vm:
        if vm.scene is not None:
            vm.wait_frame(1, timeout=90)
        cmd = [
            sys.executable, "-m", "ryll", "--direct", f"{vm.host}:{vm.port}", "--headless",
            "--duration", str(args.seconds), "--summary-json", str(args.summary_json),
            "--screenshot", str(args.screenshot), *args.ryll_args,
        ]
        for path in (args.summary_json, args.screenshot):
            path.parent.mkdir(parents=True, exist_ok=True)
        print("running:", " ".join(cmd), flush=True)
        try:
            code = subprocess.call(cmd)
        except KeyboardInterrupt:
            return 130
        print(f"demo: summary {args.summary_json}, screenshot {args.screenshot}", flush=True)
        return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ryll.testvm", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="download and build the kernel and initramfs (cached)")
    p.add_argument("--cache-dir", type=Path)
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("run", help="start a VM and print its SPICE port; stop on Ctrl+C")
    _vm_options(p)
    p.add_argument("--seconds", type=float, help="stop after this many seconds")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("screendump", help="boot a VM, wait for a frame, write PNG or PPM")
    _vm_options(p)
    p.add_argument("out", type=Path, help="output file (.png, else PPM)")
    p.add_argument("--wait", default=r"ryll: frame 1\r?\n", help="serial regex to wait for")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--delay", type=float, help="seconds to wait after that (or after start)")
    p.set_defaults(func=_cmd_screendump)

    p = sub.add_parser("demo", help="boot the test VM and run ryll headless against it")
    _vm_options(p)
    p.add_argument("--seconds", type=float, default=20.0, help="how long ryll runs")
    out = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ryll-demo"
    p.add_argument("--summary-json", type=Path, default=out / "ryll-demo-summary.json")
    p.add_argument("--screenshot", type=Path, default=out / "ryll-demo.png")
    p.add_argument("ryll_args", nargs=argparse.REMAINDER, help="more ryll options, after --")
    p.set_defaults(func=_cmd_demo, scene="animate")

    args = parser.parse_args(argv)
    if getattr(args, "ryll_args", None) and args.ryll_args[0] == "--":
        args.ryll_args = args.ryll_args[1:]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except TestVMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
