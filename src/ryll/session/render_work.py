"""Where display work runs: one at a time, on the event loop or in one worker thread.

Everything that touches display state (a display channel handling a message, a grab copying
pixels) goes through :meth:`RenderWork.run`. The display channels of a session share their
caches (images, palettes, the GLZ dictionary), so their work must never overlap; running it
all through one worker thread, in order, makes that true without a lock anywhere below
``session/``.

Small work runs right away on the event loop when the worker is idle (a thread hop costs about
50 us, more than most messages take). Big work (``big=True``: a message of ``OFFLOAD_BYTES``
or more, a decode that may take milliseconds; the compiled decoders release the GIL) goes to
the worker, and while anything is in the worker, everything else queues behind it there, so
the order of display work is always the order it was asked for. The event loop itself never
waits for display work: the channel's task (or the grab's caller) awaits it, and every other
channel, the control socket and the viewer carry on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# Messages at least this big are handled off the event loop. 64 KiB is where a decode starts
# to cost more than a thread hop: a QUIC or LZ image of about 100x100 pixels and up.
OFFLOAD_BYTES = 64 * 1024


class RenderWork:
    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._in_worker = 0
        self.ran_on_loop = 0
        self.ran_in_worker = 0

    @property
    def busy(self) -> bool:
        return self._in_worker > 0

    async def run(self, fn: Callable[..., T], *args: object, big: bool = False) -> T:
        if not big and not self._in_worker:
            self.ran_on_loop += 1
            return fn(*args)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="ryll-render")
        self._in_worker += 1
        self.ran_in_worker += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._in_worker -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
