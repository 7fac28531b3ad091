"""Input-to-display latency: the time from a key sent to the first display update after it.

The session tells the tracker of every display update (a draw, COPY_BITS or stream frame
handled on a display channel); the input controller tells it of every key press it sends. A
press starts a measurement unless one is already open (a burst of keys measures from its
first); the next display update closes it. A measurement still open after ``timeout_s`` (a key
that changed nothing on screen) is dropped and counted as ``unanswered``, so a later, unrelated
update is never taken for its answer.

Each sample is returned to the session, which publishes it as a ``LatencyMeasured`` event
(the ``--latency-file`` writer and the control socket read it from there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from ryll.channels.events import LatencyMeasured

#: A key answered by no display update within this many seconds is not measured.
LATENCY_TIMEOUT_S = 5.0
#: Samples kept for the statistics (a cadence of one key every 2 s fills it in ~2 days).
MAX_SAMPLES = 100_000


class LatencyTracker:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        timeout_s: float = LATENCY_TIMEOUT_S,
    ) -> None:
        self._clock = clock
        self._wall = wall_clock
        self.timeout_s = timeout_s
        self._pending: float | None = None
        self.samples: list[float] = []
        self.count = 0
        self.unanswered = 0

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def key_sent(self) -> None:
        now = self._clock()
        if self._pending is not None and now - self._pending > self.timeout_s:
            self.unanswered += 1
            self._pending = None
        if self._pending is None:
            self._pending = now

    def display_updated(self) -> LatencyMeasured | None:
        """A display update: the sample it closes, if a key was waiting for one."""
        if self._pending is None:
            return None
        now = self._clock()
        elapsed = now - self._pending
        self._pending = None
        if elapsed > self.timeout_s:
            self.unanswered += 1
            return None
        sample = LatencyMeasured(self._wall(), round(elapsed * 1000.0, 3))
        self.count += 1
        if len(self.samples) >= MAX_SAMPLES:
            del self.samples[: MAX_SAMPLES // 10]
        self.samples.append(sample.latency_ms)
        return sample

    def summary(self) -> dict[str, object]:
        """count, unanswered and min / median / p95 / max in milliseconds (None without
        samples)."""
        data = sorted(self.samples)
        out: dict[str, object] = {"count": self.count, "unanswered": self.unanswered}
        for key, value in (
            ("min_ms", data[0] if data else None),
            ("median_ms", round(float(np.median(data)), 3) if data else None),
            ("p95_ms", _percentile(data, 95)),
            ("max_ms", data[-1] if data else None),
        ):
            out[key] = value
        return out


def _percentile(data: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted data."""
    if not data:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(data)))
    return data[rank - 1]

