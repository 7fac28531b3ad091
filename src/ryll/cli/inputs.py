"""Headless input drivers: ``--paste-text`` types once, ``--cadence`` presses a key every 2 s
(for the input-to-display latency figures). Both wait until the inputs channel is linked and
the display has its first picture (MARK), so the guest is up and listening."""

from __future__ import annotations

import asyncio
import logging
from typing import TextIO

from ryll.channels.events import ChannelLinked, DisplayMarked
from ryll.protocol.constants import ChannelType
from ryll.session.bus import EventStream
from ryll.session.runner import FrontEnd
from ryll.session.session import Session

log = logging.getLogger("ryll.input")

#: --cadence: one keystroke this often (the Rust ryll's cadence).
CADENCE_INTERVAL_S = 2.0
#: The cadence key: Space, as the Rust ryll (harmless at a shell prompt, redraws a text field).
CADENCE_KEY = "space"


async def wait_input_ready(session: Session, events: EventStream) -> bool:
    """Read events until the inputs channel is linked and a display channel has seen MARK
    (True), or the session ended (False)."""
    inputs = session.input.ready
    marked = any(d.marked for d in session.display_channels())
    while not (inputs and marked):
        try:
            event = await events.get()
        except StopAsyncIteration:
            return False
        if isinstance(event, ChannelLinked) and event.channel_type == ChannelType.INPUTS:
            inputs = True
        elif isinstance(event, DisplayMarked):
            marked = True
    return True


class Paste(FrontEnd):
    name = "--paste-text"
    kinds = (ChannelLinked, DisplayMarked)

    def __init__(self, text: str, char_delay_ms: float, out: TextIO) -> None:
        self.text = text
        self.char_delay_ms = char_delay_ms
        self.out = out

    async def run(self, session: Session, events: EventStream) -> None:
        async with events:
            if not await wait_input_ready(session, events):
                return
        done = await session.input.type_text(self.text, self.char_delay_ms)
        print(f"ryll: paste completed ({done.characters} characters in "
              f"{done.elapsed_ms:.0f} ms)", file=self.out, flush=True)


class Cadence(FrontEnd):
    name = "--cadence"
    kinds = (ChannelLinked, DisplayMarked)

    def __init__(self, interval_s: float = CADENCE_INTERVAL_S) -> None:
        self.interval_s = interval_s

    async def run(self, session: Session, events: EventStream) -> None:
        async with events:
            if not await wait_input_ready(session, events):
                return
        while True:
            await asyncio.sleep(self.interval_s)
            await session.input.press_key(CADENCE_KEY)
