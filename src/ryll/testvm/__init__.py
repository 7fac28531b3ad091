"""ryll's own test VM: QEMU (TCG) with a SPICE server, booting a tiny guest that draws.

The guest is a Debian kernel plus an initramfs of busybox and ``drawer`` (``guest/drawer.c``),
which sets modes and draws deterministic pictures through the Bochs VBE interface; on request a
sound card the guest plays and records on (``guest/audio.c``) and SPICE ports it echoes
(``guest/portecho.c``). Tests start it with ``TestVM`` and compare what a client shows with
``TestVM.screendump()``. Pure stdlib + numpy
(+ cryptography for ``make_tls_dir``); needs qemu-system-x86, gcc, libc6-dev and apt on the host.

    python -m ryll.testvm build          # download and build the kernel and initramfs (cached)
    python -m ryll.testvm run --scene animate --streaming-video all
"""

from ryll.testvm.build import Artifacts, default_cache_dir, ensure_artifacts
from ryll.testvm.certs import make_tls_dir, subject_string
from ryll.testvm.errors import TestVMError
from ryll.testvm.images import encode_png, parse_ppm, read_ppm, write_image, write_png, write_ppm
from ryll.testvm.qmp import QMPClient, QMPError
from ryll.testvm.vm import SCENES, VGAS, TestVM, free_port, port_is_open

__all__ = [
    "SCENES",
    "VGAS",
    "Artifacts",
    "QMPClient",
    "QMPError",
    "TestVM",
    "TestVMError",
    "default_cache_dir",
    "encode_png",
    "ensure_artifacts",
    "free_port",
    "make_tls_dir",
    "parse_ppm",
    "port_is_open",
    "read_ppm",
    "subject_string",
    "write_image",
    "write_png",
    "write_ppm",
]
