"""The ``ryll`` command: parse arguments, resolve the target, run, and map every failure to one
line on stderr and a distinct exit code (see ``ryll.errors``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import re
import sys
from pathlib import Path
from typing import TextIO, cast

from ryll import __version__
from ryll.budget import DEFAULT_LIMIT, MIB
from ryll.channels.context import AudioOptions, DisplayOptions
from ryll.cli.headless import HeadlessOptions, run_headless
from ryll.cli.output import ResilientStdout, setup_logging
from ryll.cli.ports import check_forwards, parse_port_spec
from ryll.diagnostics.capture import check_capture_dir
from ryll.diagnostics.reports import (
    AUTO_SNAPSHOT_BUDGET,
    AUTO_SNAPSHOT_CAP,
    DEFAULT_DIR,
    DEFAULT_PEDANTIC_DIR,
    ReportOptions,
)
from ryll.diagnostics.ring import TOTAL_BYTES
from ryll.errors import RyllError, TLSError, UsageError
from ryll.input.keys import KeyNameError, text_to_keystrokes
from ryll.protocol.constants import ImageCompression, VideoCodecType
from ryll.session.connection import parse_subject
from ryll.session.input import MAX_TEXT
from ryll.session.record import parse_audio_in
from ryll.session.target import (
    Target,
    load_ca_file,
    load_vv_file,
    load_vv_url,
    parse_direct,
    resolve_password,
)
from ryll.video import CODEC_NAMES, available_codecs
from ryll.viewer.options import WebOptions, tls_context

EXIT_INTERRUPTED = 130
# --preferred-compression values: SpiceImageCompression names, as spice-gtk's option spells them.
PREFERRED_COMPRESSIONS = ("auto_glz", "auto_lz", "quic", "glz", "lz", "lz4", "off")


# Rust ryll flags whose features later issues build: accepted by the parser so the message is
# ours (one line, exit 2), never "unrecognized arguments".
NOT_BUILT_YET = {
    "usb_disk": "--usb-disk (USB redirection) is not built yet",
    "usb_disk_ro": "--usb-disk-ro (USB redirection) is not built yet",
    "share_dir": "--share-dir (folder sharing) is not built yet",
    "share_dir_ro": "--share-dir-ro (folder sharing) is not built yet",
}


def _compression(text: str) -> str:
    """--preferred-compression: spice-gtk's names, with - or _ (the Rust ryll's auto-glz)."""
    name = text.strip().lower().replace("-", "_")
    if name not in PREFERRED_COMPRESSIONS:
        raise argparse.ArgumentTypeError(
            f"unknown compression {text!r} (of: {', '.join(PREFERRED_COMPRESSIONS)})")
    return name


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ryll", description="A SPICE remote-display client.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--direct", metavar="HOST:PORT[:TLS_PORT]", help="connect to HOST:PORT")
    src.add_argument("--file", metavar="FILE.vv", help="connect as a virt-viewer .vv file says")
    src.add_argument("--url", metavar="URL", help="fetch a .vv file from URL and connect")
    p.add_argument("--password-file", metavar="PATH",
                   help="read the password from PATH (it wins over the .vv file's; else the "
                        "$RYLL_PASSWORD environment variable)")
    p.add_argument("--ca-file", metavar="PATH",
                   help="verify the server's TLS certificate against the PEM CA(s) in PATH "
                        "(wins over the .vv file's ca; default: the system's CAs)")
    p.add_argument("--host-subject", metavar="SUBJECT",
                   help="the server certificate's subject must be SUBJECT, e.g. "
                        "'C=IL,O=Red Hat,CN=my server' (then the host name is not checked)")
    p.add_argument("--reconnect", action="store_true",
                   help="when the server drops the session, reconnect after 1, 4 and 16 s "
                        "(not for a .vv file's single-use ticket)")
    p.add_argument("--headless", action="store_true",
                   help="run without a viewer (without --headless or --web, ryll serves the "
                        "viewer and opens it in the default browser)")
    web = p.add_argument_group("the browser viewer")
    web.add_argument("--web", action="store_true",
                     help="serve the viewer and print its one-time URL (no browser is opened)")
    web.add_argument("--web-host", default="127.0.0.1", metavar="HOST",
                     help="the viewer's address (default 127.0.0.1)")
    web.add_argument("--web-port", type=int, default=0, metavar="PORT",
                     help="the viewer's port (default 0: any free port)")
    web.add_argument("--web-tls-cert", type=Path, metavar="PEM",
                     help="serve the viewer over HTTPS with this certificate (chain)")
    web.add_argument("--web-tls-key", type=Path, metavar="PEM",
                     help="the private key of --web-tls-cert")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="end after SECONDS")
    p.add_argument("--summary-json", type=Path, metavar="PATH",
                   help="write a JSON summary of the session at exit")
    p.add_argument("--screenshot", type=Path, metavar="PATH",
                   help="at the end, write each monitor's primary surface as PNG (PATH, or "
                        "PATH-1, PATH-2... for several)")
    p.add_argument("--screenshot-cursor", action="store_true",
                   help="draw the cursor (when visible) into the --screenshot images")
    p.add_argument("--preferred-compression", type=_compression, metavar="KIND",
                   help="ask the server for this image compression: "
                        + ", ".join(PREFERRED_COMPRESSIONS) + " (auto-glz also spelt so)")
    p.add_argument("--resolution", metavar="WxH",
                   help="once the guest agent is connected, ask it for a WxH display "
                        "(without an agent: logged, nothing else)")
    p.add_argument("--image-cache-cap-mib", type=int, default=256, metavar="MIB",
                   help="bound on the decoded image cache (default 256)")
    p.add_argument("--max-memory-mib", type=int, default=DEFAULT_LIMIT // MIB, metavar="MIB",
                   help="the session's memory budget: surfaces, caches, decoded images and "
                        f"frames the server can make ryll hold (default {DEFAULT_LIMIT // MIB});"
                        " over it a message is the gap <channel>:over_budget:<what>")
    p.add_argument("--pedantic", action="store_true",
                   help="write a bug-report zip the first time each gap is seen")
    p.add_argument("--pedantic-dir", type=Path, metavar="DIR",
                   help=f"where --pedantic writes (default ./{DEFAULT_PEDANTIC_DIR}/; implies "
                        "--pedantic)")
    p.add_argument("--traffic-ring-mib", type=int, default=TOTAL_BYTES // MIB, metavar="MIB",
                   help="recent traffic kept for bug reports' traffic.pcap, weighted per "
                        f"channel (default {TOTAL_BYTES // MIB}; 0 keeps only the link phases)")
    p.add_argument("--no-disconnect-reports", action="store_true",
                   help="no bug report when the server drops a channel")
    p.add_argument("--cache-size-mib", type=int, default=80, metavar="MIB",
                   help="image cache size announced to the server (default 80, as spice-gtk)")
    p.add_argument("--glz-window-mib", type=int, metavar="MIB",
                   help="GLZ window announced to the server (default: half the guest's video "
                        "RAM, 12..64)")
    p.add_argument("--video-codecs", metavar="LIST",
                   help="video codecs the server should prefer for streams, best first, e.g. "
                        f"h264,vp8,mjpeg (of: {', '.join(CODEC_NAMES)})")
    p.add_argument("--paste-text", metavar="TEXT",
                   help="type TEXT as keystrokes (US layout) once the guest display is up; "
                        "a newline character is Return (bash: $'ls\\n'), the two characters "
                        "\\n are a backslash and an n")
    p.add_argument("--paste-char-delay-ms", type=float, default=16, metavar="MS",
                   help="pause between --paste-text characters (default 16, at least 5)")
    p.add_argument("--cadence", action="store_true",
                   help="press Space every 2 s and measure input-to-display latency")
    p.add_argument("--latency-file", type=Path, metavar="PATH",
                   help="write each latency sample as CSV: time,latency_ms")
    p.add_argument("--audio-out", type=Path, metavar="FILE.wav",
                   help="write what the guest plays to FILE.wav (silence where it paused)")
    p.add_argument("--audio-in", metavar="FILE|tone:HZ",
                   help="what the guest's microphone hears: an audio file, tone:HZ, or "
                        "silence (the default)")
    p.add_argument("--no-opus", action="store_true",
                   help="advertise no Opus on the audio channels: raw PCM both ways")
    p.add_argument("--port", action="append", default=[], metavar="NAME=unix:PATH",
                   help="serve the SPICE port NAME (a QEMU -chardev spiceport, e.g. "
                        "org.qemu.monitor.qmp.0) on the unix socket PATH; repeatable")
    p.add_argument("--control-socket", type=Path, metavar="PATH",
                   help="serve the JSON control protocol on a unix socket at PATH (mode 0600; "
                        "see docs/control-socket.md)")
    # The Rust ryll's flags (its --help of 0.3.0), same meaning; README's table maps each one.
    rust = p.add_argument_group("the Rust ryll's flags")
    rust.add_argument("--enable-paste-as-keystrokes", action="store_true",
                      help="accepted: ryll always types --paste-text and control-socket pastes "
                           "as keystrokes")
    rust.add_argument("--monitors", type=int, default=1, metavar="N",
                      help="monitors to connect (default 1; ryll shows every display channel "
                           "the server lists)")
    rust.add_argument("--no-obey-guest-size", action="store_true",
                      help="the viewer does not ask the guest to take the page's size")
    rust.add_argument("--glz-dictionary-cap-mib", type=int, default=256, metavar="MIB",
                      help="bound on the GLZ dictionary's decoded pixels (default 256)")
    rust.add_argument("--experimental-h264", action="store_true",
                      help="accepted: ryll decodes H.264 streams by default (PyAV)")
    rust.add_argument("--no-h264", action="store_true",
                      help="do not offer H.264: the server streams another codec")
    rust.add_argument("--capture", type=Path, metavar="DIR",
                      help="record the session into DIR: one pcap per channel (decrypted, "
                           "Wireshark decodes it), metadata.json, and display.mp4 of the "
                           "primary monitor")
    rust.add_argument("--bug-report-dir", type=Path, metavar="DIR",
                      help="where bug reports go: the control protocol's bug_report, a "
                           f"dropped channel's, auto-snapshots (default ./{DEFAULT_DIR}/)")
    rust.add_argument("--auto-snapshot-interval", type=float, metavar="SECONDS",
                      help="write a bug report every SECONDS into <bug-report-dir>/"
                           "auto-snapshots/")
    rust.add_argument("--auto-snapshot-cap", type=int, metavar="N",
                      help=f"keep the newest N auto-snapshots (default {AUTO_SNAPSHOT_CAP}; "
                           "and at most --auto-snapshot-budget-mib of them)")
    p.add_argument("--auto-snapshot-budget-mib", type=int, metavar="MIB",
                   help=f"total size of the auto-snapshots kept (default "
                        f"{AUTO_SNAPSHOT_BUDGET // MIB}; the newest is always kept)")
    for flag, metavar, later in (
        ("--usb-disk", "IMAGE", "USB disks"),
        ("--usb-disk-ro", "IMAGE", "USB disks"),
        ("--share-dir", "DIR", "folder sharing"),
        ("--share-dir-ro", None, "folder sharing"),
    ):
        text = f"not built yet ({later}): a usage error"
        if metavar is None:
            rust.add_argument(flag, action="store_true", help=text)
        else:
            rust.add_argument(flag, metavar=metavar, action="append", help=text)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="debug logging with timestamps, and tracebacks")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="warnings and errors only (no stats or report lines)")
    p.add_argument("--log-file", type=Path, metavar="PATH",
                   help="also write every log record (debug included, timestamped) to PATH")
    p.add_argument("--version", action="version", version=f"ryll {__version__}")
    return p


# --resolution bounds: a display mode beyond 16384 pixels a side is no mode any guest sets.
MAX_RESOLUTION = 16384


def parse_resolution(text: str) -> tuple[int, int]:
    """--resolution WxH: two positive integers, each at most MAX_RESOLUTION."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*[xX]\s*(\d{1,6})\s*", text)
    if m is None:
        raise UsageError(f"--resolution must look like 1024x768, not {text!r}")
    width, height = int(m.group(1)), int(m.group(2))
    if not (0 < width <= MAX_RESOLUTION and 0 < height <= MAX_RESOLUTION):
        raise UsageError(f"--resolution: width and height must be 1..{MAX_RESOLUTION}")
    return width, height


def parse_video_codecs(text: str) -> tuple[int, ...]:
    """--video-codecs: comma-separated SpiceVideoCodecType names, best first, each once."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--video-codecs needs at least one of: {', '.join(CODEC_NAMES)}")
    codecs: list[int] = []
    for name in names:
        if name not in CODEC_NAMES:
            raise UsageError(
                f"--video-codecs: unknown codec {name!r} (valid: {', '.join(CODEC_NAMES)})"
            )
        codec = CODEC_NAMES[name]
        if codec not in available_codecs():
            raise UsageError(f"--video-codecs: {name} cannot be decoded here (no decoder in PyAV)")
        if codec not in codecs:
            codecs.append(codec)
    return tuple(VideoCodecType(c) for c in codecs)


def check_paste(args: argparse.Namespace) -> None:
    """--paste-text must be typable on a US keyboard and within the length limit."""
    if args.paste_char_delay_ms < 0 or args.paste_char_delay_ms > 10_000:
        raise UsageError("--paste-char-delay-ms must be 0..10000")
    if args.paste_text is None:
        return
    if len(args.paste_text) > MAX_TEXT:
        raise UsageError(f"--paste-text is limited to {MAX_TEXT} characters")
    try:
        text_to_keystrokes(args.paste_text)
    except KeyNameError as exc:
        raise UsageError(f"--paste-text: {exc}") from None


def resolve_target(args: argparse.Namespace) -> Target:
    if args.direct:
        target = parse_direct(args.direct)
    elif args.file:
        target = load_vv_file(args.file)
    elif args.url:
        target = load_vv_url(args.url)
    else:
        raise UsageError("one of --direct, --file or --url is required")
    if args.ca_file is not None:
        target = dataclasses.replace(target, ca_pem=load_ca_file(args.ca_file))
    if args.host_subject is not None:
        try:
            if not parse_subject(args.host_subject):
                raise TLSError("it is empty")
        except TLSError as exc:
            raise UsageError(f"--host-subject: {exc}") from None
        target = dataclasses.replace(target, host_subject=args.host_subject)
    return resolve_password(target, args.password_file)


def check_output_file(path: Path, flag: str) -> None:
    """An output file the run will write: checked before connecting, so a typo costs one line
    and exit 2, not the session's result."""
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path}: not writable")


def check_output_dir(path: Path, flag: str) -> None:
    """An output directory (created now if missing, as the Rust ryll does)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot create it: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: not writable")


def check_outputs(args: argparse.Namespace) -> None:
    for flag, value in (("--screenshot", args.screenshot), ("--summary-json", args.summary_json),
                        ("--latency-file", args.latency_file), ("--log-file", args.log_file),
                        ("--audio-out", args.audio_out)):
        if value is not None:
            check_output_file(value, flag)
    if args.pedantic_dir is not None:
        check_output_dir(args.pedantic_dir, "--pedantic-dir")
    if args.capture is not None:
        check_capture_dir(args.capture)
    if args.bug_report_dir is not None:
        check_output_dir(args.bug_report_dir, "--bug-report-dir")
    if args.auto_snapshot_interval is not None and args.auto_snapshot_interval <= 0:
        raise UsageError("--auto-snapshot-interval must be positive")
    for flag in ("auto_snapshot_cap", "auto_snapshot_budget_mib"):
        value = getattr(args, flag)
        if value is not None:
            name = "--" + flag.replace("_", "-")
            if args.auto_snapshot_interval is None:
                raise UsageError(f"{name} needs --auto-snapshot-interval")
            if value <= 0:
                raise UsageError(f"{name} must be positive")
    if args.traffic_ring_mib < 0:
        raise UsageError("--traffic-ring-mib must be 0 or more")


def web_options(args: argparse.Namespace) -> WebOptions | None:
    """The viewer: --web serves it; without --headless it is opened in the default browser
    too (as remote-viewer shows the VM); --headless alone has none."""
    web_flags = [f"--web-{n.replace('_', '-')}" for n in ("tls_cert", "tls_key")
                 if getattr(args, f"web_{n}") is not None]
    if args.web_host != "127.0.0.1":
        web_flags.append("--web-host")
    if args.web_port != 0:
        web_flags.append("--web-port")
    if args.headless and not args.web:
        if web_flags:
            raise UsageError(f"{web_flags[0]} needs the viewer: drop --headless or add --web")
        return None
    if not 0 <= args.web_port <= 65535:
        raise UsageError("--web-port must be 0..65535")
    if (args.web_tls_cert is None) != (args.web_tls_key is None):
        raise UsageError("--web-tls-cert and --web-tls-key go together")
    if args.web_tls_cert is not None:
        tls_context(args.web_tls_cert, args.web_tls_key)  # one line now, not after connecting
    return WebOptions(host=args.web_host, port=args.web_port, tls_cert=args.web_tls_cert,
                      tls_key=args.web_tls_key, open_browser=not args.web,
                      resize_guest=not args.no_obey_guest_size)


def report_options(args: argparse.Namespace) -> ReportOptions:
    pedantic_dir = args.pedantic_dir or (DEFAULT_PEDANTIC_DIR if args.pedantic else None)
    return ReportOptions(
        directory=args.bug_report_dir or DEFAULT_DIR,
        pedantic_dir=pedantic_dir,
        disconnect=not args.no_disconnect_reports,
        auto_snapshot_interval=args.auto_snapshot_interval,
        auto_snapshot_cap=args.auto_snapshot_cap or AUTO_SNAPSHOT_CAP,
        auto_snapshot_budget=(args.auto_snapshot_budget_mib * MIB
                              if args.auto_snapshot_budget_mib else AUTO_SNAPSHOT_BUDGET),
        ring_bytes=args.traffic_ring_mib * MIB,
    )


REPORT_COMMANDS = ("report", "inspect")


def report_main(argv: list[str]) -> int:
    """``ryll report FILE.zip|CAPTURE_DIR...``: each one summarised (diagnostics.inspect)."""
    from ryll.diagnostics.inspect import inspect

    parser = argparse.ArgumentParser(
        prog="ryll report", description="Summarise ryll bug reports (zips) or --capture "
        "directories: type, target, gaps, channels, the last messages of each channel.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE.zip|DIR")
    args = parser.parse_args(argv)
    out = cast(TextIO, ResilientStdout(sys.stdout))
    try:
        for i, path in enumerate(args.paths):
            if i:
                print(file=out)
            inspect(path, out)
    except RyllError as exc:
        print(f"ryll: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in REPORT_COMMANDS:
        return report_main(argv[1:])
    verbose = False
    try:
        args = build_parser().parse_args(argv)
        verbose = args.verbose
        if args.log_file is not None:
            check_output_file(args.log_file, "--log-file")
        setup_logging(args.verbose, args.quiet, args.log_file)
        for name, message in NOT_BUILT_YET.items():
            if getattr(args, name):
                raise UsageError(message)
        web = web_options(args)
        if not 1 <= args.monitors <= 16:
            raise UsageError("--monitors must be 1..16")
        if args.monitors != 1:
            raise UsageError("--monitors: ryll shows every display the server lists; asking "
                             "the guest for more heads is not built yet")
        for name in ("duration", "cache_size_mib", "glz_window_mib", "image_cache_cap_mib",
                     "max_memory_mib", "glz_dictionary_cap_mib"):
            value = getattr(args, name)
            if value is not None and value <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive")
        # display INIT carries the window in pixels as an i32 (SpiceMsgcDisplayInit).
        if args.glz_window_mib is not None and args.glz_window_mib > 4096:
            raise UsageError("--glz-window-mib is at most 4096")
        if args.screenshot_cursor and args.screenshot is None:
            raise UsageError("--screenshot-cursor needs --screenshot")
        video_codecs = parse_video_codecs(args.video_codecs) if args.video_codecs else ()
        resolution = parse_resolution(args.resolution) if args.resolution is not None else None
        check_paste(args)
        check_outputs(args)
        forwards = [parse_port_spec(spec) for spec in args.port]
        check_forwards(forwards)
        target = resolve_target(args)
        opts = HeadlessOptions(
            duration=args.duration,
            summary_json=args.summary_json,
            reports=report_options(args),
            screenshot=args.screenshot,
            screenshot_cursor=args.screenshot_cursor,
            image_cache_bytes=args.image_cache_cap_mib << 20,
            glz_dictionary_bytes=args.glz_dictionary_cap_mib << 20,
            max_memory_bytes=args.max_memory_mib << 20,
            resolution=resolution,
            paste_text=args.paste_text,
            paste_char_delay_ms=args.paste_char_delay_ms,
            cadence=args.cadence,
            latency_file=args.latency_file,
            control_socket=args.control_socket,
            ports=tuple(forwards),
            audio_out=args.audio_out,
            audio_in=parse_audio_in(args.audio_in) if args.audio_in else None,
            audio=AudioOptions(opus=not args.no_opus),
            reconnect=args.reconnect,
            capture_dir=args.capture,
            web=web,
            display=DisplayOptions(
                cache_bytes=args.cache_size_mib << 20,
                glz_window_bytes=args.glz_window_mib << 20 if args.glz_window_mib else None,
                video_codecs=video_codecs,
                preferred_compression=(
                    ImageCompression[args.preferred_compression.upper()]
                    if args.preferred_compression else None
                ),
                excluded_codecs=(VideoCodecType.H264,) if args.no_h264 else (),
            ),
        )
        out = cast(TextIO, ResilientStdout(sys.stdout, quiet=args.quiet))
        end = asyncio.run(run_headless(target, opts, out))
        if end.error is not None:
            raise end.error
        return 0
    except RyllError as exc:
        if verbose:
            logging.getLogger("ryll").exception("fatal")
        print(f"ryll: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ryll: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
