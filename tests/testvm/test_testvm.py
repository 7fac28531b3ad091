"""Tests of ryll's test VM: unit tests of its pieces, and e2e tests that boot it under QEMU."""

from __future__ import annotations

import gzip
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from ryll.testvm import (
    QMPError,
    TestVM,
    TestVMError,
    encode_png,
    ensure_artifacts,
    make_tls_dir,
    parse_ppm,
    port_is_open,
    subject_string,
)
from ryll.testvm.build import (
    _initramfs,
    _is_static_elf,
    guest_headers,
    guest_programs,
    guest_source,
    modinfo,
)

HAVE_QEMU = shutil.which("qemu-system-x86_64") is not None
needs_qemu = pytest.mark.skipif(
    not HAVE_QEMU, reason="qemu-system-x86_64 missing: apt-get install qemu-system-x86"
)


# ---------------------------------------------------------------------------------------------
# unit tests


def _ppm(width: int, height: int, maxval: int, raster: bytes, comment: bool = True) -> bytes:
    header = b"P6\n"
    if comment:
        header += b"# made by the test\n"
    header += b"%d %d\n# another comment\n%d\n" % (width, height, maxval)
    return header + raster


def test_parse_ppm_8bit() -> None:
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
    arr = parse_ppm(_ppm(5, 3, 255, img.tobytes()))
    assert arr.shape == (3, 5, 3)
    assert arr.dtype == np.uint8
    assert np.array_equal(arr, img)
    assert arr.flags.writeable  # a copy, not a read-only view of the bytes
    # A raster byte that looks like whitespace right after the header is data, not header.
    img[0, 0] = (10, 32, 13)
    assert np.array_equal(parse_ppm(b"P6 5 3 255\n" + img.tobytes()), img)


def test_parse_ppm_small_and_wide_maxval() -> None:
    arr = parse_ppm(_ppm(2, 1, 15, bytes([0, 15, 5, 15, 0, 10]), comment=False))
    assert arr.tolist() == [[[0, 255, 85], [255, 0, 170]]]
    wide = np.array([[[0, 65535, 32768]]], dtype=">u2")
    arr = parse_ppm(_ppm(1, 1, 65535, wide.tobytes()))
    assert arr.tolist() == [[[0, 255, 127]]]


@pytest.mark.parametrize(
    "data",
    [b"P5\n1 1\n255\n\0", b"P6\n2 2\n255\n" + b"\0" * 11, b"P6\nx 2\n255\n", b"P6\n1 1\n255"],
)
def test_parse_ppm_rejects(data: bytes) -> None:
    with pytest.raises(TestVMError):
        parse_ppm(data)


def test_encode_png_is_decodable() -> None:
    import struct
    import zlib

    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    png = encode_png(img)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + n]
        assert struct.unpack(">I", png[pos + 8 + n : pos + 12 + n])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            assert struct.unpack(">II", body[:8]) == (6, 4)
        if kind == b"IDAT":
            idat += body
        pos += 12 + n
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(4, 1 + 18)
    assert np.array_equal(rows[:, 1:].reshape(4, 6, 3), img)


def _read_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    out: dict[str, tuple[int, bytes]] = {}
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos : pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body)


def test_initramfs_layout() -> None:
    image = gzip.decompress(_initramfs(
        b"#!/bin/sh\n", b"BUSYBOX", {"drawer": b"DRAWER", "agent": b"AGENT"},
        {"evdev.ko": b"KO", "evdev.deps": b"evdev.ko\n"},
    ))
    files = _read_newc(image)
    assert files["init"] == (0o100755, b"#!/bin/sh\n")
    assert files["bin/busybox"][1] == b"BUSYBOX"
    assert files["bin/drawer"] == (0o100755, b"DRAWER")
    assert files["bin/agent"] == (0o100755, b"AGENT")
    assert files["lib/modules/evdev.ko"] == (0o100644, b"KO")
    assert files["lib/modules/evdev.deps"][1] == b"evdev.ko\n"
    assert files["bin/sh"] == (0o120777, b"busybox")
    assert files["dev/console"][0] == 0o020600
    # Same inputs, same bytes (fixed timestamps).
    assert _initramfs(b"a", b"b", {"c": b"c"}, {}) == _initramfs(b"a", b"b", {"c": b"c"}, {})


def test_modinfo_reads_a_built_module() -> None:
    """An ELF64 object with a .modinfo section, built by the host's gcc: exactly what the
    kernel's modpost leaves in a .ko (NUL-separated key=value strings)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc missing")
    import subprocess
    import tempfile

    src = (
        'const char a[] __attribute__((section(".modinfo"), used)) = '
        '"name=fake_mod\\0depends=drm,ttm\\0license=GPL";\n'
    )
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "m.c"
        c.write_text(src)
        subprocess.run([gcc, "-c", "-o", str(Path(tmp) / "m.o"), str(c)], check=True)
        info = modinfo((Path(tmp) / "m.o").read_bytes())
    assert info["name"] == ["fake_mod"]
    assert info["depends"] == ["drm,ttm"]
    assert info["license"] == ["GPL"]
    with pytest.raises(TestVMError):
        modinfo(b"not elf")


def test_guest_sources_are_shipped() -> None:
    assert b"ryll: frame" in guest_source("drawer.c")
    assert b"/bin/drawer" in guest_source("init.sh")
    assert set(guest_programs()) >= {"drawer", "agent", "cursor"}
    # The programs share their marker and failure helpers through guest.h.
    assert b"static void say(" in guest_headers()["guest.h"]
    for name, src in guest_programs().items():
        assert b'#include "guest.h"' in src, name


def test_is_static_elf() -> None:
    assert not _is_static_elf(b"not an elf at all" * 10)
    python = Path(shutil.which("python3") or "/usr/bin/python3").resolve()
    assert not _is_static_elf(python.read_bytes())  # dynamically linked


def test_make_tls_dir(tmp_path: Path) -> None:
    subject = make_tls_dir(tmp_path)
    assert subject == "C=XX,L=Testville,O=Ryll Test,CN=127.0.0.1"
    assert subject == subject_string()
    assert subject_string(organization="Someone Else") != subject
    cert = x509.load_pem_x509_certificate((tmp_path / "server-cert.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "ca-cert.pem").read_bytes())
    assert cert.issuer == ca.subject
    names = [(a.oid, a.value) for a in cert.subject]
    assert names == [
        (NameOID.COUNTRY_NAME, "XX"),
        (NameOID.LOCALITY_NAME, "Testville"),
        (NameOID.ORGANIZATION_NAME, "Ryll Test"),
        (NameOID.COMMON_NAME, "127.0.0.1"),
    ]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # The key matches the certificate (the TLS stack checks that on loading).
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(tmp_path / "server-cert.pem", tmp_path / "server-key.pem")
    assert (tmp_path / "server-key.pem").stat().st_mode & 0o077 == 0


def test_testvm_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        TestVM(vga="cirrus")
    with pytest.raises(ValueError):
        TestVM(scene="nonsense")
    with pytest.raises(ValueError):
        TestVM(mode="640*480")
    vm = TestVM(scene="modes", mode="800x600", extra_cmdline="ryll.mode2=1024x768 ryll.hold=2")
    assert vm.kernel_cmdline == (
        "console=ttyS0 quiet ryll.scene=modes ryll.mode=800x600 ryll.mode2=1024x768 ryll.hold=2"
    )
    with pytest.raises(TestVMError):
        _ = vm.port  # not started
    vm.stop()  # stopping a VM that never started is harmless


def test_testvm_heads(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        TestVM(heads=0)
    with pytest.raises(ValueError):
        TestVM(vga="std", heads=2)
    one = TestVM(scene=None)
    two = TestVM(scene=None, heads=2)
    three = TestVM(scene="heads", heads=3, extra_cmdline="ryll.load=qxl")
    assert one.display_devices == []
    assert two.display_devices == ["ryllqxl0", "ryllqxl1"]
    assert three.kernel_cmdline == (
        "console=ttyS0 quiet ryll.scene=heads ryll.mode=640x480 ryll.heads=3 ryll.load=qxl"
    )
    assert "ryll.heads" not in one.kernel_cmdline
    for vm in (one, two):  # white box: what _launch would run, without running it
        vm._workdir, vm._port = tmp_path, 5930
    cmd = one._build_cmdline()
    assert cmd[cmd.index("-vga") + 1] == "qxl" and "-device" not in cmd  # as before
    cmd = two._build_cmdline()
    assert cmd[cmd.index("-vga") + 1] == "none"
    devices = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"]
    assert devices == ["qxl-vga,id=ryllqxl0", "qxl,id=ryllqxl1"]
    assert "heads=2" in repr(two)


# ---------------------------------------------------------------------------------------------
# e2e: the real VM


def _distinct_colours(img: np.ndarray) -> int:
    return len(np.unique(img.reshape(-1, 3), axis=0))


def _screendump_when(vm: TestVM, shape: tuple[int, int, int], timeout: float = 20.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while True:
        img = vm.screendump()
        if img.shape == shape or time.monotonic() > deadline:
            return img
        time.sleep(0.2)


@pytest.fixture(scope="module")
def artifacts():  # type: ignore[no-untyped-def]
    if not HAVE_QEMU:
        pytest.skip("qemu-system-x86_64 missing")
    return ensure_artifacts()


@pytest.mark.e2e
@needs_qemu
def test_build_is_idempotent_and_fast(artifacts) -> None:  # type: ignore[no-untyped-def]
    assert artifacts.kernel.is_file() and artifacts.kernel.stat().st_size > 1_000_000
    assert artifacts.initrd.is_file()
    assert gzip.decompress(artifacts.initrd.read_bytes())[:6] == b"070701"
    mtime = artifacts.initrd.stat().st_mtime_ns
    t0 = time.monotonic()
    again = ensure_artifacts()
    assert time.monotonic() - t0 < 5.0
    assert again == artifacts
    assert again.initrd.stat().st_mtime_ns == mtime  # not rebuilt
    files = _read_newc(gzip.decompress(artifacts.initrd.read_bytes()))
    qxl = files["lib/modules/qxl.deps"][1].decode().split()
    assert qxl[-1] == "qxl.ko" and qxl.index("drm.ko") < qxl.index("drm_kms_helper.ko")
    for ko in qxl:
        assert f"lib/modules/{ko}" in files
    assert b"virtio_console" in files["lib/modules/boot.list"][1]
    assert b"qxl" not in files["lib/modules/boot.list"][1]


@pytest.mark.e2e
@needs_qemu
def test_no_scene_port_kill_and_restart() -> None:
    with TestVM(scene=None) as vm:
        with socket.create_connection((vm.host, vm.port), timeout=5):
            pass
        img = _screendump_when(vm, (400, 720, 3))
        assert img.shape == (400, 720, 3)  # SeaBIOS's text screen
        port = vm.port
        vm.kill()
        assert not vm.running
        assert not port_is_open(vm.host, port)
        vm.start()  # the same ports again, as a restarted server would have
        assert vm.port == port
        assert port_is_open(vm.host, port)
        with pytest.raises(QMPError) as info:
            vm.qmp.execute("no-such-command")
        assert info.value.error_class == "CommandNotFound"
    assert not port_is_open("127.0.0.1", port)


@pytest.mark.e2e
@needs_qemu
def test_password_and_tls(tmp_path: Path) -> None:
    subject = make_tls_dir(tmp_path / "tls")
    with TestVM(scene=None, password="s3cret", tls_dir=tmp_path / "tls") as vm:
        assert vm.tls_port is not None and vm.tls_port != vm.port
        info = vm.hmp("info spice")
        assert "auth: spice" in info
        assert f"{vm.tls_port} [tls]" in info
        ctx = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca-cert.pem"))
        with socket.create_connection((vm.host, vm.tls_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                peer = tls.getpeercert()
        short = {
            "countryName": "C",
            "localityName": "L",
            "organizationName": "O",
            "commonName": "CN",
        }
        got = ",".join(f"{short[k]}={v}" for rdn in peer["subject"] for k, v in rdn)
        assert got == subject


@pytest.fixture(scope="module")
def static_qxl(artifacts) -> Iterator[TestVM]:  # type: ignore[no-untyped-def]
    with TestVM(vga="qxl", scene="static", mode="640x480", artifacts=artifacts) as vm:
        vm.wait_frame(1, timeout=90)
        yield vm


@pytest.fixture(scope="module")
def reference_picture(static_qxl: TestVM) -> np.ndarray:
    return static_qxl.screendump()


@pytest.mark.e2e
@needs_qemu
def test_static_picture(static_qxl: TestVM, reference_picture: np.ndarray) -> None:
    img = reference_picture
    assert img.shape == (480, 640, 3)
    assert img.dtype == np.uint8
    assert _distinct_colours(img) > 5000  # gradients and the hue field
    # Flat colour bars across the top, corner markers for orientation.
    assert img[20, 40].tolist() == [255, 255, 255]
    assert img[20, 120].tolist() == [255, 255, 0]
    assert img[20, 600].tolist() == [0, 0, 0]
    assert img[2, 2].tolist() == [255, 0, 0]
    assert img[2, 637].tolist() == [0, 255, 0]
    assert img[477, 2].tolist() == [0, 0, 255]
    assert img[477, 637].tolist() == [255, 255, 255]
    serial = static_qxl.serial_text()
    assert "ryll: mode set 640x480" in serial
    assert "ryll: idle" in serial


@pytest.mark.e2e
@needs_qemu
def test_static_picture_is_stable(static_qxl: TestVM, reference_picture: np.ndarray) -> None:
    first = static_qxl.screendump()
    time.sleep(1.0)
    second = static_qxl.screendump()
    assert np.array_equal(first, second)
    assert np.array_equal(first, reference_picture)


@pytest.mark.e2e
@needs_qemu
@pytest.mark.parametrize("vga", ["std", "virtio"])
def test_other_vgas_draw_the_same_picture(
    artifacts,
    reference_picture: np.ndarray,
    vga: str,  # type: ignore[no-untyped-def]
) -> None:
    with TestVM(vga=vga, scene="static", artifacts=artifacts) as vm:
        vm.wait_frame(1, timeout=90)
        assert np.array_equal(vm.screendump(), reference_picture)
        if vga == "std":
            # A reset reboots the guest, which draws the same picture again.
            off = vm.serial_offset()
            vm.system_reset()
            vm.wait_frame(1, timeout=90, after=off)
            assert np.array_equal(vm.screendump(), reference_picture)


@pytest.mark.e2e
@needs_qemu
def test_system_reset_qxl(static_qxl: TestVM, reference_picture: np.ndarray) -> None:
    off = static_qxl.serial_offset()
    static_qxl.system_reset()
    end = static_qxl.wait_serial(r"ryll: mode set 640x480", timeout=90, after=off)
    static_qxl.wait_frame(1, timeout=30, after=end)
    static_qxl.qmp.execute("query-status")  # collects pending events
    assert any(e.get("event") == "RESET" for e in static_qxl.qmp.events)
    assert np.array_equal(static_qxl.screendump(), reference_picture)


@pytest.mark.e2e
@needs_qemu
def test_modes_scene_switches(artifacts) -> None:  # type: ignore[no-untyped-def]
    with TestVM(
        scene="modes",
        mode="640x480",
        extra_cmdline="ryll.mode2=1024x768 ryll.hold=2",
        artifacts=artifacts,
    ) as vm:
        off = vm.wait_frame(1, timeout=90)
        assert vm.screendump().shape == (480, 640, 3)
        off = vm.wait_serial(r"ryll: mode set 1024x768", timeout=30, after=off)
        vm.wait_frame(1, timeout=30, after=off)
        img = vm.screendump()
        assert img.shape == (768, 1024, 3)
        assert _distinct_colours(img) > 5000
        assert img[2, 2].tolist() == [255, 0, 0] and img[765, 1021].tolist() == [255, 255, 255]


@pytest.mark.e2e
@needs_qemu
def test_animate_scene_moves_then_stops(artifacts) -> None:  # type: ignore[no-untyped-def]
    with TestVM(scene="animate", extra_cmdline="ryll.seconds=3", artifacts=artifacts) as vm:
        off = vm.wait_frame(1, timeout=90)
        a = vm.screendump()
        time.sleep(0.3)
        b = vm.screendump()
        assert a.shape == b.shape == (480, 640, 3)
        assert not np.array_equal(a, b)
        off = vm.wait_frame(20, timeout=30, after=off)
        vm.wait_idle(timeout=30, after=off)
        assert "ryll: frame 60" in vm.serial_text()
        c = vm.screendump()
        time.sleep(1.0)
        assert np.array_equal(c, vm.screendump())


@pytest.mark.e2e
@needs_qemu
def test_wait_serial_timeout_reports_tail(static_qxl: TestVM) -> None:
    with pytest.raises(TestVMError, match="serial log tail"):
        static_qxl.wait_serial("this never appears", timeout=0.3)


@pytest.mark.e2e
@needs_qemu
def test_guest_error_is_reported(artifacts) -> None:  # type: ignore[no-untyped-def]
    with TestVM(
        scene="static", mode="640x480", extra_cmdline="ryll.mode2=bogus", artifacts=artifacts
    ) as vm:
        with pytest.raises(TestVMError, match="ryll: error bad mode2"):
            vm.wait_frame(1, timeout=90)
