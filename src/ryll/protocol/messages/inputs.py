"""Inputs channel messages (spice.proto ``channel InputsChannel``)."""

from __future__ import annotations

from ryll.protocol.reader import Reader


def parse_modifiers(body: bytes, what: str) -> int:
    """INIT and KEY_MODIFIERS both carry the u16 keyboard modifier state."""
    return Reader(body, what=what).u16()
