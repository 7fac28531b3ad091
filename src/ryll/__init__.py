"""ryll: a SPICE remote-display client.

The package is layered (see docs/ARCHITECTURE.md): ``protocol`` (constants, wire formats, link) is
sans-IO; ``channels`` turns parsed messages into state changes and replies; ``session`` is the
asyncio edge; ``cli`` is the front end. Dependencies point downward only.
"""

__version__ = "0.1.0"
