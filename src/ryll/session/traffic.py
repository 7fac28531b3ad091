"""The session's raw traffic, as it crosses the wire, for whoever records it: ``--capture``'s
pcaps and the bug reports' traffic ring (ryll.diagnostics).

A sink sees every channel connection from its start: ``opened`` when the TCP (or TLS) stream
is up, then the link phase's steps and every later read and write, each as the bytes that went
over the connection (decrypted: TLS is below this), in the order they happened, with the time
since the session started. The one thing never shown is the ticket: the link phase hands sinks
as many zero bytes as the encrypted ticket had, so no recording can leak it.

Sinks run on the event loop's thread, inside the channel loops: they must be quick (append,
write) and must not raise; a sink that fails is dropped and logged, the session goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("ryll.session")


@dataclass(frozen=True, slots=True)
class ChannelKey:
    """One channel of the session: its type, id, and name (``display``, ``main``...)."""

    type: int
    id: int
    name: str


class TrafficSink(Protocol):
    def opened(self, channel: ChannelKey, at: float) -> None:
        """A new connection for ``channel`` (again after a reconnect, or a switch to TLS)."""

    def linked(self, channel: ChannelKey, mini_header: bool, at: float) -> None:
        """The link phase is over; what follows is framed with the mini header or not."""

    def sent(self, channel: ChannelKey, data: bytes, at: float) -> None:
        """Bytes the client wrote on ``channel``."""

    def received(self, channel: ChannelKey, data: bytes, at: float) -> None:
        """Bytes the server sent on ``channel``."""


class Traffic:
    """The session's sinks, fanned out to. Empty (the usual case) costs one test a chunk."""

    def __init__(self) -> None:
        self.sinks: tuple[TrafficSink, ...] = ()
        self.failed: list[TrafficSink] = []  # dropped after raising

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def add(self, sink: TrafficSink) -> None:
        self.sinks = (*self.sinks, sink)

    def remove(self, sink: TrafficSink) -> None:
        self.sinks = tuple(s for s in self.sinks if s is not sink)

    def opened(self, channel: ChannelKey, at: float) -> None:
        for sink in self.sinks:
            try:
                sink.opened(channel, at)
            except Exception as exc:
                self._failed(sink, exc)

    def linked(self, channel: ChannelKey, mini_header: bool, at: float) -> None:
        for sink in self.sinks:
            try:
                sink.linked(channel, mini_header, at)
            except Exception as exc:
                self._failed(sink, exc)

    def sent(self, channel: ChannelKey, data: bytes, at: float) -> None:
        for sink in self.sinks:
            try:
                sink.sent(channel, data, at)
            except Exception as exc:
                self._failed(sink, exc)

    def received(self, channel: ChannelKey, data: bytes, at: float) -> None:
        for sink in self.sinks:
            try:
                sink.received(channel, data, at)
            except Exception as exc:
                self._failed(sink, exc)

    def _failed(self, sink: TrafficSink, exc: Exception) -> None:
        """A recorder's bug or a full disk never ends the session: the sink is dropped."""
        log.error("traffic recorder %s failed, dropped: %s", type(sink).__name__, exc,
                  exc_info=exc)
        self.remove(sink)
        self.failed.append(sink)
