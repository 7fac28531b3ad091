"""Shared fixtures: the bytes captured from real sessions (see tests/fixtures/make_captures.py).

The loading itself lives in ``tests/fixtures/loader.py`` so test modules can also use it at
import time (for parametrization).
"""

from __future__ import annotations

import pytest

from tests.fixtures import loader
from tests.fixtures.records import Record


@pytest.fixture(scope="session")
def capture_records() -> tuple[Record, ...]:
    return loader.records()


@pytest.fixture(scope="session")
def link_reply_main() -> bytes:
    """SpiceLinkHeader (16 B) + SpiceLinkReply (178 B + 2 cap words) from a real main link."""
    return loader.fixture_bytes("link-reply-main.bin")


@pytest.fixture(scope="session")
def link_result_denied() -> bytes:
    """The 4-byte link result spice-server sent after a wrong ticket."""
    return loader.fixture_bytes("link-result-denied.bin")
