"""Builds (once) and caches what the test VM boots: a Debian kernel and a tiny initramfs.

The kernel is Debian's current ``linux-image-*-amd64`` (``apt-get download`` + ``dpkg-deb``, no
install). The initramfs holds ``/init`` (``guest/init.sh``), a static busybox (from
``busybox-static``, downloaded the same way, or the host's ``/bin/busybox`` if it is static and
the download fails), one program ``/bin/<name>`` per ``guest/<name>.c`` (compiled with
``gcc -static ... -lm``; ``drawer`` is the one ``/init`` runs, ``audio`` and ``portecho`` run next
to it on request) and the kernel modules the guest needs for input devices, virtio-serial ports,
the QXL DRM driver and HDA sound (``GUEST_MODULES`` and their dependencies, read from each
module's ``.modinfo``). It is written in Python as a ``newc`` cpio
archive, gzip-compressed, with fixed timestamps, so the same inputs give the same bytes.

Modules: ``/lib/modules/<name>.ko`` and ``/lib/modules/<name>.deps``, the module files to
``insmod`` in order (dependencies first) to load ``<name>``. ``/init`` loads ``BOOT_MODULES``
at boot and more on request (``ryll.load=qxl,...`` on the kernel command line; ``ryll.sound=1``
loads ``snd_hda_codec_generic`` and ``snd_hda_intel``).

A stamp file records the inputs (kernel package, hashes of the guest sources, init.sh and
busybox, and the build format); a second call with unchanged inputs only checks the stamp. A lock
file makes concurrent callers (pytest-xdist workers) wait for each other instead of racing.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ryll.testvm.errors import TestVMError

log = logging.getLogger("ryll.testvm")

#: Bump when the way artifacts are built changes, so old caches are rebuilt.
BUILD_FORMAT = 2
#: The Debian metapackage that names the current kernel.
KERNEL_METAPACKAGE = "linux-image-amd64"
CACHE_ENV = "RYLL_TESTVM_CACHE"
#: Overrides the kernel package (e.g. "linux-image-6.1.0-56-amd64") instead of asking apt-cache.
KERNEL_ENV = "RYLL_TESTVM_KERNEL_PACKAGE"
GCC_FLAGS = ("-static", "-O2", "-s", "-Wall")
#: After the source on gcc's command line (static linking takes libraries in order).
GCC_LIBS = ("-lm",)
#: Kernel modules (by module name) shipped in the initramfs, with their dependencies: input
#: (evdev; a PS/2 mouse for server mouse mode; USB host controllers + HID for a usb-tablet in
#: client mode), virtio-serial ports (the agent's and ``TestVM(ports=...)``), the QXL DRM
#: driver (cursor commands), and HDA sound for ``TestVM(sound=True)`` (intel-hda + hda-duplex:
#: the controller driver and the generic codec driver, which nothing would load on its own).
GUEST_MODULES = (
    "evdev", "psmouse", "uhci_hcd", "ehci_pci", "xhci_pci", "usbhid", "hid_generic",
    "virtio_pci", "virtio_console", "qxl", "snd_hda_codec_generic", "snd_hda_intel",
)
#: Loaded by /init at every boot (written to /lib/modules/boot.list). qxl is not: it takes the
#: QXL device out of VGA mode, so only scenes that ask for it (ryll.load=qxl) load it; the sound
#: modules load with ryll.sound=1 only (in the background, so the drawer's boot is unchanged).
BOOT_MODULES = (
    "evdev", "psmouse", "uhci_hcd", "ehci_pci", "xhci_pci", "usbhid", "hid_generic",
    "virtio_pci", "virtio_console",
)


@dataclass(frozen=True)
class Artifacts:
    """What ``-kernel`` and ``-initrd`` get."""

    kernel: Path
    initrd: Path
    kernel_package: str = ""


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ryll-testvm"


def guest_source(name: str) -> bytes:
    """The bytes of ``guest/<name>`` shipped with the package (drawer.c, init.sh)."""
    return resources.files("ryll.testvm").joinpath("guest", name).read_bytes()


def guest_programs() -> dict[str, bytes]:
    """Every ``guest/<name>.c``: program name -> source."""
    return {name[:-2]: src for name, src in _guest_files(".c").items()}


def guest_headers() -> dict[str, bytes]:
    """Every ``guest/<name>.h`` (shared by the programs): file name -> text."""
    return _guest_files(".h")


def _guest_files(suffix: str) -> dict[str, bytes]:
    guest = resources.files("ryll.testvm").joinpath("guest")
    return {e.name: e.read_bytes() for e in guest.iterdir() if e.name.endswith(suffix)}


def ensure_artifacts(cache_dir: Path | None = None) -> Artifacts:
    """Returns the kernel and initramfs, building them first if the inputs changed.

    Raises TestVMError (naming the Debian package to install) if a tool is missing.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".lock"):
        return _ensure(cache)


# ----------------------------------------------------------------------------------------------


def _ensure(cache: Path) -> Artifacts:
    stamp_path = cache / "stamp.json"
    initrd = cache / "initrd.img"
    old = _read_stamp(stamp_path)

    package = _kernel_package(old)
    programs = guest_programs()
    headers = guest_headers()
    init_src = guest_source("init.sh")
    wanted: dict[str, object] = {
        "format": BUILD_FORMAT,
        "kernel_package": package,
        "programs_sha256": {name: _sha256(src) for name, src in sorted(programs.items())},
        "headers_sha256": {name: _sha256(src) for name, src in sorted(headers.items())},
        "init_sha256": _sha256(init_src),
        "gcc_flags": list(GCC_FLAGS),
        "gcc_libs": list(GCC_LIBS),
        "modules": list(GUEST_MODULES),
        "boot_modules": list(BOOT_MODULES),
    }

    kernel = _ensure_kernel(cache, package)
    modules = _ensure_modules(cache, package)
    busybox = _ensure_busybox(cache)
    wanted["busybox_sha256"] = _sha256(busybox.read_bytes())

    if initrd.is_file() and old is not None and {k: old.get(k) for k in wanted} == wanted:
        log.debug("test VM artifacts up to date in %s", cache)
        return Artifacts(kernel=kernel, initrd=initrd, kernel_package=package)

    log.info("building test VM initramfs in %s", cache)
    binaries = {
        name: _compile(cache, name, src, headers).read_bytes() for name, src in programs.items()
    }
    image = _initramfs(init_src, busybox.read_bytes(), binaries, modules)
    _write_atomic(initrd, image)
    _write_atomic(stamp_path, (json.dumps(wanted, indent=2, sort_keys=True) + "\n").encode())
    log.info("test VM initramfs: %s (%d bytes)", initrd, len(image))
    return Artifacts(kernel=kernel, initrd=initrd, kernel_package=package)


def _read_stamp(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _kernel_package(old_stamp: dict[str, object] | None) -> str:
    env = os.environ.get(KERNEL_ENV)
    if env:
        return env
    problem = ""
    try:
        out = _run(["apt-cache", "depends", KERNEL_METAPACKAGE], package="apt").stdout
        m = re.search(r"Depends:\s*(linux-image-[0-9][A-Za-z0-9.+-]*-amd64)\b", out)
        if m:
            return m.group(1)
        problem = f"apt-cache knows no {KERNEL_METAPACKAGE} (run `apt-get update` first)"
    except TestVMError as exc:
        problem = str(exc)
    # Offline or no apt lists: a kernel built before will do.
    cached = old_stamp.get("kernel_package") if old_stamp else None
    if isinstance(cached, str) and cached:
        log.warning("%s; using the cached kernel %s", problem, cached)
        return cached
    raise TestVMError(f"cannot find the current Debian kernel package: {problem}")


def _ensure_kernel(cache: Path, package: str) -> Path:
    kdir = cache / "kernel" / package
    vmlinuz = kdir / "vmlinuz"
    if vmlinuz.is_file():
        return vmlinuz
    log.info("downloading kernel package %s", package)
    with tempfile.TemporaryDirectory(dir=cache, prefix="dl-") as tmp:
        deb = _apt_download(package, Path(tmp))
        found = _extract_from_deb(
            deb, lambda name: re.fullmatch(r"boot/vmlinuz-.*", name) is not None
        )
        if not found:
            raise TestVMError(f"{deb.name} has no boot/vmlinuz-*")
        name, data = found[0]
        kdir.mkdir(parents=True, exist_ok=True)
        _write_atomic(vmlinuz, data)
        (kdir / "source.txt").write_text(f"{deb.name} {name}\n")
    log.info("kernel: %s (%d bytes)", vmlinuz, vmlinuz.stat().st_size)
    return vmlinuz


def _ensure_modules(cache: Path, package: str) -> dict[str, bytes]:
    """The initramfs's /lib/modules files: ``<name>.ko`` for GUEST_MODULES and everything they
    depend on, ``<name>.deps`` (the .ko files to insmod for ``<name>``, dependencies first) and
    ``boot.list``. Cached next to the kernel; two passes over the .deb (read every module's
    .modinfo, then extract the closure) keep memory at the size of what is kept."""
    mdir = cache / "kernel" / package / f"modules-{_sha256(' '.join(GUEST_MODULES).encode())[:12]}"
    if not (mdir / "boot.list").is_file():
        log.info("extracting kernel modules from %s", package)
        with tempfile.TemporaryDirectory(dir=cache, prefix="dl-") as tmp:
            deb = _apt_download(package, Path(tmp))
            index: dict[str, tuple[str, list[str]]] = {}  # module name -> (path, depends)

            def note(name: str, data: bytes) -> None:
                info = modinfo(data)
                # The kernel treats "-" and "_" in module names alike; .modinfo mixes them.
                mod = info.get("name", [Path(name).stem])[0].replace("-", "_")
                deps = [
                    d.replace("-", "_")
                    for d in ",".join(info.get("depends", [])).split(",") if d
                ]
                index[mod] = (name, deps)

            _scan_deb(deb, lambda n: n.endswith(".ko"), note)
            order: dict[str, list[str]] = {}

            def closure(mod: str, seen: list[str], stack: tuple[str, ...] = ()) -> None:
                if mod in seen or mod in stack:
                    return
                if mod not in index:
                    raise TestVMError(f"{package} has no kernel module {mod!r}")
                for dep in index[mod][1]:
                    closure(dep, seen, (*stack, mod))
                seen.append(mod)

            for mod in GUEST_MODULES:
                order[mod] = []
                closure(mod, order[mod])
            wanted = {index[m][0]: m for mods in order.values() for m in mods}
            found = _extract_from_deb(deb, lambda n: n in wanted)
            staging = Path(tmp) / "modules"
            staging.mkdir()
            for path, data in found:
                (staging / f"{wanted[path]}.ko").write_bytes(data)
            for mod, mods in order.items():
                (staging / f"{mod}.deps").write_text("".join(f"{m}.ko\n" for m in mods))
            (staging / "boot.list").write_text("".join(f"{m}\n" for m in BOOT_MODULES))
            if mdir.exists():
                shutil.rmtree(mdir)
            os.replace(staging, mdir)
    return {p.name: p.read_bytes() for p in sorted(mdir.iterdir())}


def modinfo(data: bytes) -> dict[str, list[str]]:
    """The key=value strings of an ELF64 kernel module's ``.modinfo`` section."""
    if data[:5] != b"\x7fELF\x02":
        raise TestVMError("not an ELF64 kernel module")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _t, _f, _a, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, off, size

    _n, stroff, _s = section(shstrndx)
    out: dict[str, list[str]] = {}
    for i in range(shnum):
        name, off, size = section(i)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name:end] != b".modinfo":
            continue
        for item in data[off:off + size].split(b"\0"):
            key, sep, value = item.decode(errors="replace").partition("=")
            if sep:
                out.setdefault(key, []).append(value)
    return out


def _ensure_busybox(cache: Path) -> Path:
    bdir = cache / "busybox"
    target = bdir / "busybox"
    if target.is_file():
        return target
    bdir.mkdir(parents=True, exist_ok=True)
    try:
        log.info("downloading busybox-static")
        with tempfile.TemporaryDirectory(dir=cache, prefix="dl-") as tmp:
            deb = _apt_download("busybox-static", Path(tmp))
            found = _extract_from_deb(deb, lambda name: name == "bin/busybox")
            if not found:
                raise TestVMError(f"{deb.name} has no bin/busybox")
            _write_atomic(target, found[0][1], mode=0o755)
            (bdir / "source.txt").write_text(f"{deb.name}\n")
    except TestVMError as exc:
        host = Path("/bin/busybox")
        if host.is_file() and _is_static_elf(host.read_bytes()):
            log.warning("%s; using the host's static %s", exc, host)
            _write_atomic(target, host.read_bytes(), mode=0o755)
            (bdir / "source.txt").write_text(f"host {host}\n")
        else:
            raise TestVMError(
                f"cannot get a static busybox ({exc}); `apt-get install busybox-static` "
                "or make `apt-get download busybox-static` work"
            ) from exc
    return target


def _apt_download(package: str, dest: Path) -> Path:
    _run(
        ["apt-get", "download", "-o", "APT::Sandbox::User=root", package],
        package="apt",
        cwd=dest,
        hint="run `apt-get update` if the package list is stale",
    )
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if not debs:
        raise TestVMError(f"apt-get download {package} left no .deb in {dest}")
    return debs[-1]


def _extract_from_deb(deb: Path, want: Callable[[str], bool]) -> list[tuple[str, bytes]]:
    """Regular files of the .deb's data whose path (without "./") satisfies ``want``."""
    found: list[tuple[str, bytes]] = []
    _scan_deb(deb, want, lambda name, data: found.append((name, data)))
    return found


def _scan_deb(
    deb: Path, want: Callable[[str], bool], visit: Callable[[str, bytes], None]
) -> None:
    """Calls ``visit(path, data)`` for each regular file of the .deb whose path (without "./")
    satisfies ``want``."""
    try:
        proc = subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(deb)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise TestVMError("dpkg-deb not found: `apt-get install dpkg`") from exc
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and want(name):
                    f = tar.extractfile(member)
                    assert f is not None
                    visit(name, f.read())
    except tarfile.TarError as exc:
        raise TestVMError(f"cannot read {deb.name}: {exc}") from exc
    finally:
        proc.stdout.close()
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        rc = proc.wait()
    if rc != 0:
        raise TestVMError(f"dpkg-deb --fsys-tarfile {deb.name} failed ({rc}): {stderr.strip()}")


def _compile(cache: Path, name: str, source: bytes, headers: dict[str, bytes]) -> Path:
    bdir = cache / "build"
    bdir.mkdir(parents=True, exist_ok=True)
    for header, text in headers.items():
        (bdir / header).write_bytes(text)
    src = bdir / f"{name}.c"
    out = bdir / name
    src.write_bytes(source)
    log.info("compiling %s", src)
    try:
        _run(
            ["gcc", *GCC_FLAGS, "-o", str(out) + ".tmp", str(src), *GCC_LIBS],
            package="gcc libc6-dev linux-libc-dev",
        )
    except TestVMError as exc:
        if "cannot find -lc" in str(exc) or "stdio.h" in str(exc):
            raise TestVMError(f"{exc}\n(`apt-get install libc6-dev`)") from exc
        if "sound/asound.h" in str(exc) or "linux/" in str(exc):
            raise TestVMError(f"{exc}\n(`apt-get install linux-libc-dev`)") from exc
        raise
    os.replace(str(out) + ".tmp", out)
    return out


# ----------------------------------------------------------------------------------------------
# newc cpio


def _cpio_entry(
    name: str, mode: int, data: bytes = b"", ino: int = 0, rdev: tuple[int, int] = (0, 0)
) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (
        ino,
        mode,
        0,
        0,
        2 if stat.S_ISDIR(mode) else 1,
        0,
        len(data),
        0,
        0,
        rdev[0],
        rdev[1],
        len(encoded),
        0,
    )
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = header + encoded
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def _initramfs(
    init: bytes, busybox: bytes, programs: dict[str, bytes], modules: dict[str, bytes]
) -> bytes:
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = []
    for d in (
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "etc",
        "lib",
        "lib/modules",
    ):
        entries.append((d, stat.S_IFDIR | 0o755, b"", (0, 0)))
    entries += [
        # The kernel opens /dev/console for init's stdio before anything is mounted.
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("dev/null", stat.S_IFCHR | 0o666, b"", (1, 3)),
        ("dev/ttyS0", stat.S_IFCHR | 0o660, b"", (4, 64)),
        ("init", stat.S_IFREG | 0o755, init, (0, 0)),
        ("bin/busybox", stat.S_IFREG | 0o755, busybox, (0, 0)),
        ("bin/sh", stat.S_IFLNK | 0o777, b"busybox", (0, 0)),
    ]
    for name in sorted(programs):
        entries.append((f"bin/{name}", stat.S_IFREG | 0o755, programs[name], (0, 0)))
    for name in sorted(modules):
        entries.append((f"lib/modules/{name}", stat.S_IFREG | 0o644, modules[name], (0, 0)))
    raw = io.BytesIO()
    for ino, (name, mode, data, rdev) in enumerate(entries, start=1):
        raw.write(_cpio_entry(name, mode, data, ino=ino, rdev=rdev))
    raw.write(_cpio_entry("TRAILER!!!", 0))
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(raw.getvalue())
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# helpers


def _run(
    cmd: list[str], *, package: str, cwd: Path | None = None, hint: str = ""
) -> subprocess.CompletedProcess[str]:
    log.debug("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise TestVMError(f"{cmd[0]} not found: `apt-get install {package}`") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        msg = f"`{' '.join(cmd)}` failed ({proc.returncode}): {detail}"
        if hint:
            msg += f" ({hint})"
        raise TestVMError(msg)
    return proc


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with _suppress_oserror():
            os.unlink(tmp)
        raise


@contextmanager
def _suppress_oserror() -> Iterator[None]:
    try:
        yield
    except OSError:
        pass


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _is_static_elf(data: bytes) -> bool:
    """True for a 64-bit little-endian ELF executable without a PT_INTERP (dynamic loader)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        (p_type,) = struct.unpack_from("<I", data, phoff + i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True
