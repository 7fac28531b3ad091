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
