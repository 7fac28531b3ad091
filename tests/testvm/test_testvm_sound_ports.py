"""Unit tests of the test VM's sound card and SPICE ports: the QEMU command line, the kernel
command line, the guest programs (guest/audio.c, guest/portecho.c) and the serial reports.
tests/e2e/test_testvm_audio.py boots them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ryll.testvm import Artifacts, TestVM, TestVMError
from ryll.testvm.build import (
    BOOT_MODULES,
    GUEST_MODULES,
    _compile,
    guest_headers,
    guest_programs,
    guest_source,
)


def _cmd(vm: TestVM, tmp_path: Path) -> list[str]:
    vm._workdir, vm._port = tmp_path, 5930  # white box: what _launch would run
    return vm._build_cmdline()


def _pairs(cmd: list[str], option: str) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == option]


def test_defaults_add_nothing(tmp_path: Path) -> None:
    vm = TestVM(scene=None)
    cmd = _cmd(vm, tmp_path)
    assert "-audiodev" not in cmd and "-chardev" not in cmd and "-mon" not in cmd
    assert "-device" not in cmd
    assert "ryll.sound" not in vm.kernel_cmdline


def test_sound(tmp_path: Path) -> None:
    vm = TestVM(sound=True, extra_cmdline="ryll.audio=play:1000:2",
                artifacts=Artifacts(kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd"))
    cmd = _cmd(vm, tmp_path)
    assert _pairs(cmd, "-audiodev") == ["spice,id=ryllsnd"]
    assert _pairs(cmd, "-device") == ["intel-hda", "hda-duplex,audiodev=ryllsnd"]
    assert vm.kernel_cmdline == (
        "console=ttyS0 quiet ryll.scene=static ryll.mode=640x480 ryll.sound=1 "
        "ryll.audio=play:1000:2"
    )


def test_qmp_port_and_ports(tmp_path: Path) -> None:
    vm = TestVM(scene=None, qmp_port=True, ports=["org.ryll.echo.0", "org.ryll.b"])
    cmd = _cmd(vm, tmp_path)
    assert _pairs(cmd, "-chardev") == [
        "spiceport,id=ryllport0,name=org.ryll.echo.0",
        "spiceport,id=ryllport1,name=org.ryll.b",
        "spiceport,id=ryllqmp,name=org.qemu.monitor.qmp.0",
    ]
    assert _pairs(cmd, "-mon") == ["chardev=ryllqmp,mode=control"]
    assert _pairs(cmd, "-device") == [
        "virtio-serial-pci",
        "virtserialport,chardev=ryllport0,name=org.ryll.echo.0",
        "virtserialport,chardev=ryllport1,name=org.ryll.b",
    ]
    # The QMP port alone needs no virtio-serial bus.
    assert "-device" not in _cmd(TestVM(scene=None, qmp_port=True), tmp_path)


def test_ports_share_the_agents_bus(tmp_path: Path) -> None:
    cmd = _cmd(TestVM(scene=None, agent_port=True, ports=["org.ryll.x"]), tmp_path)
    assert _pairs(cmd, "-device") == [
        "virtio-serial-pci",
        "virtserialport,chardev=vdagent,name=com.redhat.spice.0",
        "virtserialport,chardev=ryllport0,name=org.ryll.x",
    ]


@pytest.mark.parametrize(
    "ports",
    [
        "org.ryll.echo.0",  # a string, not a list of names
        ["has,comma"],
        ["has space"],
        [""],
        ["a", "a"],
        ["org.qemu.monitor.qmp.0"],
        ["com.redhat.spice.0"],
    ],
)
def test_bad_port_names(ports: object) -> None:
    with pytest.raises(ValueError):
        TestVM(ports=ports)  # type: ignore[arg-type]


def test_wait_audio_parses_the_reports(tmp_path: Path) -> None:
    vm = TestVM(scene=None, workdir=tmp_path)
    vm._workdir = tmp_path
    vm.serial_path.write_bytes(
        b"ryll: sound ready\n"
        b"ryll-audio: played 1000 Hz for 2 s (96000 frames)\n"
        b"ryll-audio: recorded 3 s, peak 0 Hz, rms 0.0\n"
        b"ryll-audio: recorded 1.5 s, peak 440 Hz, rms 8174.7\r\n"
    )
    played, end = vm.wait_audio("played", timeout=1)
    assert played == {"freq": 1000, "seconds": 2, "frames": 96000}
    recorded, end = vm.wait_audio("recorded", timeout=1, after=end)
    assert recorded == {"seconds": 3, "peak": 0, "rms": 0}
    recorded, end = vm.wait_audio("recorded", timeout=1, after=end)
    assert recorded == {"seconds": 1.5, "peak": 440, "rms": 8174.7}
    with pytest.raises(TestVMError):  # nothing more, and no QEMU running
        vm.wait_audio("recorded", timeout=0.2, after=end)
    with pytest.raises(ValueError):
        vm.wait_audio("heard")


def test_guest_side_is_shipped() -> None:
    assert {"audio", "portecho"} <= set(guest_programs())
    init = guest_source("init.sh")
    for word in (b"ryll.sound=1", b"ryll.audio=", b"ryll.audio_delay=", b"ryll.audio_repeat=",
                 b"ryll.audio_pause=", b"ryll.echo=", b"/bin/audio", b"/bin/portecho"):
        assert word in init, word
    assert {"snd_hda_intel", "snd_hda_codec_generic"} <= set(GUEST_MODULES)
    assert not {"snd_hda_intel", "snd_hda_codec_generic"} & set(BOOT_MODULES)
    audio = guest_source("audio.c")
    for marker in (b"ryll-audio: played %u Hz for %g s (%lu frames)",
                   b"ryll-audio: recorded %g s, peak %u Hz, rms %.1f",
                   b"ryll-audio: mixer %s = on", b"ryll-audio: mixer %s = %ld (max)"):
        assert marker in audio
    # The mixer goes up through the raw control ioctls (QEMU's HDA codec starts muted at 0).
    for ioctl in (b"SNDRV_CTL_IOCTL_ELEM_LIST", b"SNDRV_CTL_IOCTL_ELEM_INFO",
                  b"SNDRV_CTL_IOCTL_ELEM_WRITE", b"/dev/snd/controlC0"):
        assert ioctl in audio, ioctl


@pytest.mark.parametrize("name", ["audio", "portecho"])
def test_guest_programs_compile(name: str, tmp_path: Path) -> None:
    if shutil.which("gcc") is None or not Path("/usr/include/sound/asound.h").exists():
        pytest.skip("gcc or linux-libc-dev missing")
    out = _compile(tmp_path, name, guest_programs()[name], guest_headers())
    assert out.stat().st_size > 10_000
