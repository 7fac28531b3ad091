"""EventTranslator: session events to the protocol's events, by the specification's rules."""

from __future__ import annotations

from typing import Any

from ryll.channels.events import AgentConnected, AgentDisconnected
from ryll.control.events import EventTranslator


def test_agent_connected_fires_on_transitions_only() -> None:
    """The specification: "once when the agent connects and once when it disconnects"; an
    agent that restarts re-announces itself with no disconnect in between."""
    out: list[tuple[str, dict[str, Any]]] = []
    tr = EventTranslator(lambda name, data: out.append((name, dict(data))), lambda: 0.0)
    for event in (AgentConnected(10), AgentConnected(10), AgentDisconnected(0),
                  AgentDisconnected(0), AgentConnected(7)):
        tr.translate(event)
    assert out == [
        ("agent_connected", {"connected": True, "tokens": 10}),
        ("agent_connected", {"connected": False, "error": 0}),
        ("agent_connected", {"connected": True, "tokens": 7}),
    ]


def test_a_reconnect_ends_the_agent_and_the_ping_interval() -> None:
    from ryll.channels.events import Reconnected, Reconnecting, ServerPinged

    out: list[tuple[str, dict[str, Any]]] = []
    clock = iter([0.0, 1.0, 100.0, 115.0])
    tr = EventTranslator(lambda name, data: out.append((name, dict(data))), lambda: 0.0,
                         monotonic=lambda: next(clock))
    tr.translate(AgentConnected(10))
    tr.translate(ServerPinged(1, 0, 1))
    tr.translate(ServerPinged(1, 0, 2))
    tr.translate(Reconnecting(1, 1.0, "the server closed the main channel"))
    tr.translate(ServerPinged(1, 0, 3))  # the first after the outage: no sample
    tr.translate(Reconnected(1))
    tr.translate(ServerPinged(1, 0, 4))
    tr.translate(AgentConnected(10))
    names = [(n, d.get("connected", d.get("sample_ms"))) for n, d in out]
    assert names == [("agent_connected", True), ("latency", 1000.0),
                     ("agent_connected", False), ("reconnecting", None), ("reconnected", None),
                     ("latency", 15000.0), ("agent_connected", True)]
    assert out[3][1] == {"attempt": 1, "delay_s": 1.0,
                         "reason": "the server closed the main channel"}
    assert out[4][1] == {"attempt": 1}
