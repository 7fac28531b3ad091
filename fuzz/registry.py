"""Every fuzz target by name: ``TARGETS[name] -> Target(one_input, seeds, description)``.

Import this only after atheris' instrumentation is set up (the driver does): it imports ryll.
"""

from __future__ import annotations

from fuzz.target import Target
from fuzz.targets import channels, codecs, diagnostics, messages, protocol, render

TARGETS: dict[str, Target] = {
    **codecs.TARGETS,
    **render.TARGETS,
    **messages.TARGETS,
    **protocol.TARGETS,
    **channels.TARGETS,
    **diagnostics.TARGETS,
}
