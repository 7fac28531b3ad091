"""A fuzz target: the harness, its seeds, and what it covers (for the README and --list)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    #: Runs one input; raises only on a contract violation (anything escaping is a finding).
    one_input: Callable[[bytes], None]
    #: The seed inputs, in the harness's input layout.
    seeds: Callable[[], list[bytes]]
    description: str
