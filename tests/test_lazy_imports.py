"""What a session loads only when it needs it (issue 14: a session's RSS).

PyAV (FFmpeg, about 20 MiB), simplejpeg and Pillow are imported by the first stream of their
codec or the first PNG, never by importing ryll's command line or its API; urllib.request
(--url), cryptography.x509 (a certificate to check) and statistics by what needs them. Each
check runs in a fresh interpreter, since this test process has long imported them all.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("av", "PIL", "simplejpeg", "aiohttp", "urllib.request", "statistics",
         "cryptography.x509")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    return set(out.stdout.split())


@pytest.mark.parametrize("code", [
    "import ryll.cli.main",
    "import ryll",
    "import ryll.session.session, ryll.session.screens, ryll.channels.display",
    "from ryll.video import available_codecs; available_codecs()",
])
def test_importing_loads_no_heavy_library(code: str) -> None:
    assert loaded_after(code) == set()


def test_the_first_use_loads_each() -> None:
    assert loaded_after(
        "from ryll.video import make_decoder; make_decoder(2)") == {"av"}
    assert loaded_after(
        "import numpy as np; from ryll.session.screens import encode_png;"
        " encode_png(np.zeros((2, 2, 3), np.uint8))") == {"PIL"}
    assert "simplejpeg" in loaded_after(
        "from ryll.video.mjpeg import decode_mjpeg_frame\n"
        "try:\n decode_mjpeg_frame(b'not a jpeg')\nexcept Exception:\n pass")
