"""Headless input drivers: ``--paste-text`` types once, ``--cadence`` presses a key every 2 s
(for the input-to-display latency figures). Both wait until the inputs channel is linked and
the display has its first picture (MARK), so the guest is up and listening."""

from __future__ import annotations

import asyncio
import logging
from typing import TextIO

from ryll.session.session import Session

log = logging.getLogger("ryll.input")

#: --cadence: one keystroke this often (the Rust ryll's cadence).
CADENCE_INTERVAL_S = 2.0
#: The cadence key: Space, as the Rust ryll (harmless at a shell prompt, redraws a text field).
CADENCE_KEY = "space"
_POLL_S = 0.05


async def wait_input_ready(session: Session) -> None:
    """Until the inputs channel is linked and a display channel has seen MARK."""
    while not (session.input.ready and any(d.marks for d in session.display_channels())):
        await asyncio.sleep(_POLL_S)


async def paste_text(session: Session, text: str, char_delay_ms: float, out: TextIO) -> None:
    await wait_input_ready(session)

    def done(characters: int, elapsed_ms: float) -> None:
        print(f"ryll: paste completed ({characters} characters in {elapsed_ms:.0f} ms)",
              file=out, flush=True)

    session.input.paste_observers.append(done)
    try:
        await session.input.type_text(text, char_delay_ms)
    finally:
        session.input.paste_observers.remove(done)


async def cadence(session: Session, interval_s: float = CADENCE_INTERVAL_S) -> None:
    await wait_input_ready(session)
    while True:
        await asyncio.sleep(interval_s)
        await session.input.press_key(CADENCE_KEY)
