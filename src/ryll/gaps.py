"""The gap registry: every place ryll deliberately drops, partly handles, or recovers from
something the server sent.

Keys are stable strings ``"<channel>:<kind>:<detail>"`` (``display:hexdump:126``,
``display:unimpl:draw_text``) and never carry instance data, so a key means the same thing in
every session and every report. The registry belongs to one session, counts occurrences, keeps the
first hexdump per key, and keeps the new keys until the session takes them
(:meth:`GapRegistry.take_new`) and publishes each as a ``GapOpened`` event: registering never
calls anything, so a channel can register from wherever it is handled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("ryll.gaps")

# How much of an unknown message a gap keeps: enough to see a header and a few fields.
HEXDUMP_BYTES = 64
# Distinct unknown opcodes remembered per channel before they collapse into one
# "<channel>:hexdump_cap" key: a hostile server sending every u16 opcode would otherwise grow
# the registry (and --pedantic's zips) without bound.
MAX_UNKNOWN_OPCODES_PER_CHANNEL = 64
# A hard ceiling on distinct keys of any kind, for the same reason.
MAX_KEYS = 4096


def hexdump(data: bytes, limit: int = HEXDUMP_BYTES) -> str:
    """Classic 16-bytes-a-line hexdump of the first ``limit`` bytes."""
    chunk = data[:limit]
    lines = []
    for off in range(0, len(chunk), 16):
        row = chunk[off : off + 16]
        hexpart = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{off:08x}  {hexpart:<47}  |{text}|")
    if len(data) > limit:
        lines.append(f"... ({len(data)} bytes in all)")
    return "\n".join(lines)


@dataclass
class Gap:
    """One gap key's record."""

    key: str
    count: int = 0
    detail: str = ""
    hexdump: str | None = None
    channel_state: dict[str, object] | None = None


class GapRegistry:
    """Per-session registry of gap keys."""

    def __init__(self) -> None:
        self._gaps: dict[str, Gap] = {}
        self._new: list[Gap] = []
        self._unknown_opcodes: dict[str, set[int]] = {}
        self.dropped_keys = 0

    def take_new(self) -> list[Gap]:
        """The gaps first seen since the last call, oldest first."""
        if not self._new:
            return []
        new, self._new = self._new, []
        return new

    def __contains__(self, key: str) -> bool:
        return key in self._gaps

    def __len__(self) -> int:
        return len(self._gaps)

    def get(self, key: str) -> Gap | None:
        return self._gaps.get(key)

    def counts(self) -> dict[str, int]:
        return {k: g.count for k, g in sorted(list(self._gaps.items()))}

    def gaps(self) -> list[Gap]:
        return [g for _, g in sorted(list(self._gaps.items()))]

    def register(
        self,
        key: str,
        detail: str = "",
        data: bytes | None = None,
        channel_state: dict[str, object] | None = None,
    ) -> Gap | None:
        """Count one occurrence of ``key``; the first one logs, keeps ``data``'s hexdump and
        queues the gap for ``take_new``. Returns the gap, or None once ``MAX_KEYS`` is
        reached."""
        gap = self._gaps.get(key)
        if gap is None:
            if len(self._gaps) >= MAX_KEYS:
                self.dropped_keys += 1
                return None
            gap = Gap(key, detail=detail, channel_state=channel_state)
            if data is not None:
                gap.hexdump = hexdump(data)
            self._gaps[key] = gap
            gap.count = 1
            if gap.hexdump is not None:
                log.warning("gap %s: %s\n%s", key, detail, gap.hexdump)
            else:
                log.warning("gap %s: %s", key, detail)
            self._new.append(gap)
            return gap
        gap.count += 1
        return gap

    def unknown_message(
        self,
        channel: str,
        opcode: int,
        body: bytes,
        channel_state: dict[str, object] | None = None,
    ) -> Gap | None:
        """An opcode this channel has no branch for: ``<channel>:hexdump:<opcode>``, or the
        channel's single ``hexdump_cap`` key once it has seen too many distinct opcodes."""
        seen = self._unknown_opcodes.setdefault(channel, set())
        key = f"{channel}:hexdump:{opcode}"
        if opcode not in seen:
            if len(seen) >= MAX_UNKNOWN_OPCODES_PER_CHANNEL:
                return self.register(
                    f"{channel}:hexdump_cap",
                    f"more than {MAX_UNKNOWN_OPCODES_PER_CHANNEL} distinct unknown opcodes",
                    body,
                    channel_state,
                )
            seen.add(opcode)
        return self.register(
            key, f"unhandled message {opcode} ({len(body)} bytes)", body, channel_state
        )
