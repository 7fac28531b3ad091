"""A real SPICE server to test against: QEMU (TCG) booting the test VM's kernel and initramfs.

    with TestVM(vga="qxl", scene="static", mode="640x480") as vm:
        vm.wait_frame(1)
        pixels = vm.screendump()          # (480, 640, 3) uint8, the pixel oracle
        connect_client(vm.host, vm.port)

``scene=None`` boots no kernel: the display then shows SeaBIOS's "No bootable device" text screen
(720x400), and the server is up at once. The guest writes markers on its serial port
("ryll: mode set WxH", "ryll: frame N", "ryll: idle", "ryll: error ..."); ``wait_serial`` and
``wait_frame`` wait for them. With ``sound=True`` the guest can play and record
(``guest/audio.c``, "ryll-audio: ..." lines, ``wait_audio``); ``ports`` and ``qmp_port`` add
SPICE port channels, and the guest can echo a port (``guest/portecho.c``, "ryll-echo: ...").

QEMU runs as a child process. It is stopped by ``stop()`` (QMP quit, then SIGTERM, then SIGKILL),
on garbage collection and at interpreter exit; and, when the VM was started from the main thread,
the kernel kills it if the Python process dies (PR_SET_PDEATHSIG), so a crashed test run leaves no
QEMU behind.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from ryll.testvm.build import Artifacts, ensure_artifacts
from ryll.testvm.errors import TestVMError
from ryll.testvm.qmp import QMPClient

QEMU = "qemu-system-x86_64"
VGAS = ("qxl", "std", "virtio")
SCENES = ("static", "animate", "modes", "cursor", "input", "heads")
#: The QEMU device ids of the QXL devices of a VM with ``heads`` > 1 (head 0 is the VGA one).
QXL_ID = "ryllqxl{}"
#: The audiodev id of ``sound=True``; the chardev ids of ``qmp_port=True`` and of ``ports``.
AUDIODEV_ID = "ryllsnd"
QMP_PORT_ID = "ryllqmp"
QMP_PORT_NAME = "org.qemu.monitor.qmp.0"
PORT_ID = "ryllport{}"
_PORT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ERROR_RE = re.compile(r"ryll: error[^\r\n]*")
#: What guest/audio.c prints after each run (``TestVM.wait_audio``).
AUDIO_PLAYED_RE = (
    r"ryll-audio: played (?P<freq>\d+) Hz for (?P<seconds>[0-9.]+) s \((?P<frames>\d+) frames\)"
)
AUDIO_RECORDED_RE = (
    r"ryll-audio: recorded (?P<seconds>[0-9.]+) s, peak (?P<peak>\d+) Hz, rms (?P<rms>[0-9.]+)"
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to host:port succeeds (it is closed again at once)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class TestVM:
    """One QEMU with a SPICE server on 127.0.0.1. A context manager: ``with TestVM() as vm``."""

    __test__ = False  # not a pytest test class, despite the name

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        vga: str = "qxl",
        scene: str | None = "static",
        mode: str = "640x480",
        heads: int = 1,
        extra_cmdline: str = "",
        password: str | None = None,
        tls_dir: Path | str | None = None,
        image_compression: str | None = None,
        streaming_video: str | None = None,
        zlib_glz_wan_compression: str | None = None,
        jpeg_wan_compression: str | None = None,
        workdir: Path | str | None = None,
        memory_mb: int = 256,
        extra_spice: str = "",
        usb_tablet: bool = False,
        agent_port: bool = False,
        sound: bool = False,
        qmp_port: bool = False,
        ports: Sequence[str] = (),
        multi_client: bool = False,
        extra_args: Sequence[str] = (),
        artifacts: Artifacts | None = None,
        cache_dir: Path | None = None,
        qemu: str = QEMU,
    ) -> None:
        """
        vga: "qxl", "std" or "virtio" (QEMU's ``-vga``).
        scene: the guest's workload ("static", "animate", "modes") or None for no kernel;
            "cursor" and "heads" (guest/cursor.c) need extra_cmdline="ryll.load=qxl".
        mode: the guest's first display mode, "WxH".
        heads: the number of QXL devices, each a SPICE display channel (and cursor channel) of
            its own. 1 is QEMU's ``-vga qxl``; more (vga="qxl" only) is ``-vga none``, a
            ``qxl-vga`` device with id "ryllqxl0" and ``qxl`` devices "ryllqxl1"... (see
            ``display_devices``), and "ryll.heads=N" on the kernel command line. The extra
            devices have no VGA mode: only the guest's qxl DRM driver shows anything on them
            (scene="heads").
        extra_cmdline: appended to the kernel command line, e.g. "ryll.mode2=800x600 ryll.hold=2"
            or "ryll.seconds=5".
        password: the SPICE ticket (None: ``disable-ticketing=on``).
        tls_dir: a directory with ca-cert.pem, server-cert.pem and server-key.pem (see
            ``certs.make_tls_dir``): adds a TLS port next to the plain one.
        image_compression, streaming_video, zlib_glz_wan_compression, jpeg_wan_compression: the
            ``-spice`` options of the same names (with dashes), when given.
        workdir: where the QMP socket, serial log, QEMU log and password file go (a temporary
            directory, removed at ``stop()``, by default).
        extra_spice: appended to the ``-spice`` option string (",key=value,...").
        usb_tablet: add a USB tablet (absolute pointer), which lets the server offer client
            mouse mode; without it the guest has a PS/2 mouse only (server mode).
        agent_port: add the virtio-serial port ``com.redhat.spice.0`` wired to SPICE's vdagent
            channel, where a guest agent (``guest/agent.c``) talks to the client; it runs when
            ``extra_cmdline`` has "ryll.agent=1" (and "ryll.clip=TEXT" makes it grab the
            clipboard with TEXT).
        sound: add an HDA sound card on SPICE's audio backend (``-audiodev spice,id=ryllsnd
            -device intel-hda -device hda-duplex,audiodev=ryllsnd``), so the server offers the
            playback and record channels, and "ryll.sound=1" on the kernel command line, which
            loads the guest's HDA driver ("ryll: sound ready" once /dev/snd/pcmC0D0p and
            pcmC0D0c exist). "ryll.audio=play:FREQ:SECONDS" or "ryll.audio=record:SECONDS" in
            ``extra_cmdline`` runs ``guest/audio.c`` (see init.sh: ryll.audio_delay,
            ryll.audio_repeat (default 0: forever), ryll.audio_pause); it prints
            "ryll-audio: played FREQ Hz for S s (N frames)" and
            "ryll-audio: recorded S s, peak FREQ Hz, rms R" (``wait_audio``).
        qmp_port: offer QEMU's own QMP monitor as the SPICE port channel
            "org.qemu.monitor.qmp.0" (``-chardev spiceport,id=ryllqmp,...`` ``-mon
            chardev=ryllqmp,mode=control``). The test VM's ``qmp`` stays on its unix socket.
        ports: names of guest-facing SPICE port channels: each NAME is ``-chardev
            spiceport,id=ryllportI,name=NAME`` wired to a virtio-serial port NAME in the guest
            (``-device virtserialport,chardev=ryllportI,name=NAME`` on one
            ``virtio-serial-pci``, shared with ``agent_port``). "ryll.echo=NAME[,NAME...]" in
            ``extra_cmdline`` makes the guest echo each such port back uppercased
            (``guest/portecho.c``: "ryll-echo: up NAME (/dev/vportXpY)", then
            "ryll-echo: NAME echoed N bytes" after each chunk, N in all).
        multi_client: run QEMU with ``SPICE_DEBUG_ALLOW_MC=1`` in its environment, so
            spice-server keeps several clients at once (without it a new client replaces the
            old one): the many-session benchmark and the Locust tests.
        extra_args: appended to QEMU's command line.
        """
        if vga not in VGAS:
            raise ValueError(f"vga must be one of {VGAS}, not {vga!r}")
        if scene is not None and scene not in SCENES:
            raise ValueError(f"scene must be one of {SCENES} or None, not {scene!r}")
        if not re.fullmatch(r"\d+x\d+", mode):
            raise ValueError(f"mode must look like 640x480, not {mode!r}")
        if heads < 1 or heads > 4:
            raise ValueError(f"heads must be 1 to 4, not {heads!r}")
        if heads > 1 and vga != "qxl":
            raise ValueError(f"heads={heads} needs vga='qxl', not {vga!r}")
        if isinstance(ports, str):
            raise ValueError(f"ports must be a sequence of names, not the string {ports!r}")
        ports = list(ports)
        for name in ports:
            if not isinstance(name, str) or not _PORT_NAME_RE.fullmatch(name):
                raise ValueError(f"a port name must match {_PORT_NAME_RE.pattern}, not {name!r}")
        if len(set(ports)) != len(ports) or {QMP_PORT_NAME, "com.redhat.spice.0"} & set(ports):
            raise ValueError(f"port names must be distinct and not reserved: {ports!r}")
        self.vga = vga
        self.heads = heads
        self.scene = scene
        self.mode = mode
        self.extra_cmdline = extra_cmdline
        self.password = password
        self.tls_dir = Path(tls_dir) if tls_dir is not None else None
        self.image_compression = image_compression
        self.streaming_video = streaming_video
        self.zlib_glz_wan_compression = zlib_glz_wan_compression
        self.jpeg_wan_compression = jpeg_wan_compression
        self.memory_mb = memory_mb
        self.extra_spice = extra_spice
        self.usb_tablet = usb_tablet
        self.agent_port = agent_port
        self.sound = sound
        self.qmp_port = qmp_port
        self.ports = ports
        self.multi_client = multi_client
        self.extra_args = list(extra_args)
        self.qemu_binary = qemu
        self._artifacts = artifacts
        self._cache_dir = cache_dir
        self._given_workdir = Path(workdir) if workdir is not None else None
        self._workdir: Path | None = None
        self._port: int | None = None
        self._tls_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._qmp: QMPClient | None = None
        self._finalizer: weakref.finalize | None = None
        self._workdir_finalizer: weakref.finalize | None = None
        self.cmdline: list[str] = []
        if self.tls_dir is not None:
            missing = [
                n
                for n in ("ca-cert.pem", "server-cert.pem", "server-key.pem")
                if not (self.tls_dir / n).is_file()
            ]
            if missing:
                raise ValueError(f"tls_dir {self.tls_dir} lacks {', '.join(missing)}")

    # -- properties ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise TestVMError("the VM has not been started")
        return self._port

    @property
    def tls_port(self) -> int | None:
        """The TLS port, or None without ``tls_dir``."""
        if self.tls_dir is None:
            return None
        if self._tls_port is None:
            raise TestVMError("the VM has not been started")
        return self._tls_port

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise TestVMError("the VM has not been started")
        return self._workdir

    @property
    def serial_path(self) -> Path:
        return self.workdir / "serial.log"

    @property
    def qemu_log_path(self) -> Path:
        return self.workdir / "qemu.log"

    @property
    def qmp_path(self) -> Path:
        return self.workdir / "qmp.sock"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def artifacts(self) -> Artifacts | None:
        return self._artifacts

    @property
    def qmp(self) -> QMPClient:
        """The QMP client, connected on first use."""
        if self._qmp is None:
            self._qmp = QMPClient(self.qmp_path)
        if not self._qmp.connected:
            if not self.running:
                raise TestVMError("QEMU is not running" + self._log_tail_suffix())
            self._qmp.connect()
        return self._qmp

    @property
    def display_devices(self) -> list[str]:
        """The QEMU device ids of the QXL devices, head 0 first ([] for ``heads=1``, whose
        ``-vga`` device has no id: ``screendump()`` without a device dumps it)."""
        return [QXL_ID.format(i) for i in range(self.heads)] if self.heads > 1 else []

    @property
    def kernel_cmdline(self) -> str:
        parts = ["console=ttyS0", "quiet", f"ryll.scene={self.scene}", f"ryll.mode={self.mode}"]
        if self.heads > 1:
            parts.append(f"ryll.heads={self.heads}")
        if self.sound:
            parts.append("ryll.sound=1")
        if self.extra_cmdline:
            parts.append(self.extra_cmdline)
        return " ".join(parts)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> TestVM:
        """Starts QEMU and returns once the SPICE port accepts TCP connections.

        May be called again after ``stop()`` or ``kill()``: the new QEMU listens on the same
        ports (a client can reconnect) and the serial log starts afresh.
        """
        if self.running:
            raise TestVMError("the VM is already running")
        if self.scene is not None and self._artifacts is None:
            self._artifacts = ensure_artifacts(self._cache_dir)
        if shutil.which(self.qemu_binary) is None:
            raise TestVMError(
                f"{self.qemu_binary} not found: install the Debian package `qemu-system-x86`"
            )
        self._setup_workdir()
        reuse_ports = self._port is not None
        last_error: TestVMError | None = None
        for attempt in range(4):
            if not reuse_ports or attempt > 1:
                self._port = free_port(self.host)
                self._tls_port = free_port(self.host) if self.tls_dir is not None else None
                while self._tls_port == self._port:
                    self._tls_port = free_port(self.host)
            try:
                self._launch()
                self._wait_listening(timeout)
                return self
            except _PortInUse as exc:
                last_error = TestVMError(str(exc))
                time.sleep(0.2 * (attempt + 1))
        assert last_error is not None
        raise last_error

    def stop(self, timeout: float = 10.0) -> None:
        """Stops QEMU (QMP quit, then SIGTERM, then SIGKILL) and removes a temporary workdir."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                if self._qmp is None or not self._qmp.connected:
                    self._qmp = QMPClient(self.qmp_path, timeout=min(5.0, timeout))
                    self._qmp.connect(wait=1.0)
                self._qmp.execute("quit")
            except TestVMError:
                pass
            _reap(proc, timeout)
        self._after_exit()
        if self._workdir_finalizer is not None:
            self._workdir_finalizer()  # removes the temporary workdir
            self._workdir_finalizer = None
            self._workdir = None

    def kill(self) -> None:
        """SIGKILLs QEMU at once (a server that dies). The workdir and serial log are kept."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._after_exit()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> TestVM:
        if not self.running:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- guest --------------------------------------------------------------------------------

    def serial_text(self) -> str:
        """The serial log so far (latin-1, so string offsets are byte offsets)."""
        try:
            return self.serial_path.read_bytes().decode("latin-1")
        except FileNotFoundError:
            return ""

    def serial_offset(self) -> int:
        """The current end of the serial log: pass it as ``after`` to wait for what comes next."""
        try:
            return self.serial_path.stat().st_size
        except FileNotFoundError:
            return 0

    def wait_serial(
        self, pattern: str, timeout: float = 60.0, after: int = 0, *, fail_on_error: bool = True
    ) -> int:
        """Waits until the regex ``pattern`` matches the serial log at or after offset ``after``;
        returns the offset just past the match.

        Raises TestVMError (with the log's tail) on timeout, if QEMU exits, or, with
        ``fail_on_error``, if the guest prints "ryll: error ..." first.
        """
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.serial_text()
            m = rx.search(text, after)
            if m:
                return m.end()
            if fail_on_error:
                err = _ERROR_RE.search(text, after)
                if err:
                    raise TestVMError(f"guest error while waiting for {pattern!r}: {err.group(0)}")
            if not self.running:
                raise TestVMError(
                    f"QEMU exited while waiting for {pattern!r} on the serial port"
                    + self._tails(text)
                )
            if time.monotonic() >= deadline:
                raise TestVMError(
                    f"timed out after {timeout} s waiting for {pattern!r} on the serial port"
                    + self._tails(text)
                )
            time.sleep(0.05)

    def wait_frame(self, n: int = 1, timeout: float = 60.0, after: int = 0) -> int:
        """Waits for "ryll: frame N" (exactly N); returns the offset past it."""
        return self.wait_serial(rf"ryll: frame {n}\r?\n", timeout, after)

    def wait_idle(self, timeout: float = 60.0, after: int = 0) -> int:
        return self.wait_serial(r"ryll: idle\r?\n", timeout, after)

    def wait_audio(
        self, kind: str = "played", timeout: float = 60.0, after: int = 0
    ) -> tuple[dict[str, float], int]:
        """Waits for guest/audio.c's next report at or after ``after``: kind "played"
        ({"freq", "seconds", "frames"}) or "recorded" ({"seconds", "peak", "rms"}); returns
        the values and the offset past the line."""
        if kind not in ("played", "recorded"):
            raise ValueError(f"kind must be 'played' or 'recorded', not {kind!r}")
        pattern = AUDIO_PLAYED_RE if kind == "played" else AUDIO_RECORDED_RE
        end = self.wait_serial(pattern + r"\r?\n", timeout, after)
        matches = list(re.finditer(pattern, self.serial_text()[after:end]))
        return {k: float(v) for k, v in matches[-1].groupdict().items()}, end

    def screendump(self, device: str | None = None, head: int | None = None) -> np.ndarray:
        """QEMU's view of the guest display: an (H, W, 3) uint8 RGB array.

        device: a display device's id (see ``display_devices``; None: the primary display);
        head: the head of that device (None: 0). Both are QMP screendump's own arguments."""
        return self.qmp.screendump_array(device=device, head=head, tmpdir=self.workdir)

    def system_reset(self) -> None:
        """Resets the guest (like the reset button); the guest boots again."""
        self.qmp.system_reset()

    def hmp(self, command_line: str) -> str:
        return self.qmp.hmp(command_line)

    # -- internals ----------------------------------------------------------------------------

    def _setup_workdir(self) -> None:
        if self._given_workdir is not None:
            self._given_workdir.mkdir(parents=True, exist_ok=True)
            self._workdir = self._given_workdir
        elif self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="ryll-testvm-"))
            self._workdir_finalizer = weakref.finalize(
                self, shutil.rmtree, str(self._workdir), ignore_errors=True
            )
        # A unix socket path must fit in 108 bytes.
        if len(str(self.qmp_path)) > 100:
            raise TestVMError(f"workdir path too long for a unix socket: {self.workdir}")

    def _build_cmdline(self) -> list[str]:
        wd = self.workdir
        spice = [f"port={self.port}", f"addr={self.host}"]
        extra: list[str] = []
        if self.password is None:
            spice.append("disable-ticketing=on")
        else:
            secret = wd / "spice-password"
            secret.touch(mode=0o600)
            secret.write_text(self.password)
            extra += ["-object", f"secret,id=ryllspicepw,file={secret},format=raw"]
            spice.append("password-secret=ryllspicepw")
        if self.tls_dir is not None:
            spice += [f"tls-port={self._tls_port}", f"x509-dir={self.tls_dir.resolve()}"]
        for name, value in (
            ("image-compression", self.image_compression),
            ("streaming-video", self.streaming_video),
            ("zlib-glz-wan-compression", self.zlib_glz_wan_compression),
            ("jpeg-wan-compression", self.jpeg_wan_compression),
        ):
            if value is not None:
                spice.append(f"{name}={value}")
        if self.heads > 1:
            vga = ["-vga", "none", "-device", f"qxl-vga,id={QXL_ID.format(0)}"]
            for i in range(1, self.heads):
                vga += ["-device", f"qxl,id={QXL_ID.format(i)}"]
        else:
            vga = ["-vga", self.vga]
        if self.usb_tablet:
            extra += ["-usb", "-device", "usb-tablet"]
        if self.agent_port or self.ports:
            extra += ["-device", "virtio-serial-pci"]
        if self.agent_port:
            extra += [
                "-chardev", "spicevmc,id=vdagent,name=vdagent",
                "-device", "virtserialport,chardev=vdagent,name=com.redhat.spice.0",
            ]
        for i, name in enumerate(self.ports):
            chardev = PORT_ID.format(i)
            extra += [
                "-chardev", f"spiceport,id={chardev},name={name}",
                "-device", f"virtserialport,chardev={chardev},name={name}",
            ]
        if self.qmp_port:
            extra += [
                "-chardev", f"spiceport,id={QMP_PORT_ID},name={QMP_PORT_NAME}",
                "-mon", f"chardev={QMP_PORT_ID},mode=control",
            ]
        if self.sound:
            extra += [
                "-audiodev", f"spice,id={AUDIODEV_ID}",
                "-device", "intel-hda",
                "-device", f"hda-duplex,audiodev={AUDIODEV_ID}",
            ]
        spice_opt = ",".join(spice)
        if self.extra_spice:
            spice_opt += "," + self.extra_spice.lstrip(",")
        # fmt: off
        cmd = [
            self.qemu_binary,
            "-name", "ryll-testvm",
            "-no-user-config",
            "-machine", "accel=tcg",
            "-cpu", "max",
            "-m", str(self.memory_mb),
            *vga,
            "-display", "none",
            "-monitor", "none",
            "-nic", "none",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-serial", f"file:{self.serial_path}",
            "-spice", spice_opt,
            *extra,
        ]
        # fmt: on
        if self.scene is not None:
            assert self._artifacts is not None
            cmd += [
                "-kernel",
                str(self._artifacts.kernel),
                "-initrd",
                str(self._artifacts.initrd),
                "-append",
                self.kernel_cmdline,
            ]
        cmd += self.extra_args
        return cmd

    def _launch(self) -> None:
        self._after_exit()
        for stale in (self.qmp_path, self.serial_path):
            try:
                stale.unlink()
            except FileNotFoundError:
                pass
        self.cmdline = self._build_cmdline()
        self._log = open(self.qemu_log_path, "wb")  # noqa: SIM115 - closed in _after_exit
        preexec = (
            _die_with_parent if threading.current_thread() is threading.main_thread() else None
        )
        try:
            self._proc = subprocess.Popen(
                self.cmdline,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl+C in the terminal goes to Python, not QEMU
                preexec_fn=preexec,
                env={**os.environ, "SPICE_DEBUG_ALLOW_MC": "1"} if self.multi_client else None,
            )
        except OSError as exc:
            raise TestVMError(f"cannot run {self.qemu_binary}: {exc}") from exc
        self._finalizer = weakref.finalize(self, _terminate, self._proc)

    def _wait_listening(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                log = self._qemu_log()
                self._after_exit()
                if "binding socket" in log or "Failed to open SPICE sockets" in log:
                    raise _PortInUse(f"QEMU could not listen on its ports: {log.strip()}")
                raise TestVMError(
                    f"QEMU exited with status {self._proc.returncode} at start:\n{log.strip()}\n"
                    f"command: {' '.join(self.cmdline)}"
                )
            ports = [self.port] + ([self._tls_port] if self._tls_port else [])
            if all(port_is_open(self.host, p, 0.2) for p in ports):
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise TestVMError(f"SPICE port {self.port} did not open within {timeout} s")
            time.sleep(0.05)

    def _after_exit(self) -> None:
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self._finalizer is not None and self._proc is not None and self._proc.poll() is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._log is not None and (self._proc is None or self._proc.poll() is not None):
            self._log.close()
            self._log = None

    def _qemu_log(self) -> str:
        try:
            return self.qemu_log_path.read_text(errors="replace")
        except (FileNotFoundError, TestVMError):
            return ""

    def _log_tail_suffix(self) -> str:
        log = self._qemu_log().strip()
        return f"; QEMU log:\n{log[-2000:]}" if log else ""

    def _tails(self, serial: str) -> str:
        out = "\n--- serial log tail ---\n" + (serial[-2000:] or "(empty)")
        log = self._qemu_log().strip()
        if log:
            out += "\n--- QEMU log tail ---\n" + log[-2000:]
        return out

    def __repr__(self) -> str:
        where = f" on {self.host}:{self._port}" if self._port else ""
        state = "running" if self.running else "stopped"
        heads = f" heads={self.heads}" if self.heads > 1 else ""
        return (
            f"<TestVM vga={self.vga}{heads} scene={self.scene} mode={self.mode} {state}{where}>"
        )


class _PortInUse(TestVMError):
    pass


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Waits for ``proc``; SIGTERM then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    try:
        proc.wait(timeout=timeout / 2)
        return
    except subprocess.TimeoutExpired:
        pass
    proc.terminate()
    try:
        proc.wait(timeout=timeout / 2)
        return
    except subprocess.TimeoutExpired:
        pass
    proc.kill()
    proc.wait()


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 3 s (garbage collection, interpreter exit)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
