"""When the server drops a session: whether to link again, and when (``--reconnect``).

The Rust ryll's policy (its ``app/reconnect.rs``, shaped like spice-gtk's): up to three
attempts per disconnect, after 1, 4 and 16 s; a successful attempt restores the full budget
for the next disconnect; a single-use ticket (the .vv file's ``delete-this-file``) is never
retried, since the first link consumed it and the server would only refuse it. Pure: the
session does the waiting and the linking, and records each attempt here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

BACKOFF_S = (1.0, 4.0, 16.0)


@dataclass
class Attempt:
    """One reconnect attempt, as the summary lists it."""

    number: int  # 1..len(BACKOFF_S) within its disconnect
    delay_s: float
    after: str  # why the session had dropped
    at: float = 0.0  # wall time the attempt linked (or failed)
    ok: bool = False
    error: str | None = None


@dataclass
class ReconnectLog:
    """The policy and the attempts of one session."""

    enabled: bool = False
    single_use: bool = False
    backoff: tuple[float, ...] = BACKOFF_S
    attempts: list[Attempt] = field(default_factory=list)
    refused: str | None = None  # why a disconnect was not retried

    def delays(self, reason: str) -> tuple[float, ...]:
        """The waits before each attempt for a session that ended with ``reason`` (a
        ``SessionEnd.reason``): none unless enabled and the server dropped it; none for a
        single-use ticket (noted in ``refused``)."""
        if not self.enabled or reason != "server_closed":
            return ()
        if self.single_use:
            self.refused = "the .vv file's ticket is single-use (delete-this-file)"
            return ()
        return self.backoff

    def as_dict(self) -> dict[str, object]:
        return {"enabled": self.enabled, "attempts": [asdict(a) for a in self.attempts],
                "refused": self.refused}
