"""The layering docs/ARCHITECTURE.md promises, checked on the source: the protocol core and
what it calls (``protocol/``, ``channels/``, the gap registry, and the pure ``render/``,
``codecs/``, ``video/`` and ``input/``) are sans-IO: no sockets, event loop, threads, locks or
clocks (the time comes in with each message); and nothing below ``session/`` imports the
layers above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ryll"
SANS_IO = ("protocol", "channels", "render", "codecs", "video", "audio", "input")
FORBIDDEN = {"time", "threading", "asyncio", "socket", "select", "selectors", "ssl",
             "concurrent", "multiprocessing", "queue"}
ABOVE = {"session", "cli", "control", "api", "viewer"}
# The viewer's own sans-IO pieces (the front end around them is asyncio and aiohttp).
VIEWER_PURE = ("keymap.py", "damage.py", "wire.py", "encode.py")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def modules(*layers: str) -> list[Path]:
    out = [p for layer in layers for p in (SRC / layer).rglob("*.py")]
    if "protocol" in layers:
        out.append(SRC / "gaps.py")  # the registry the channels write to
    return sorted(out)


@pytest.mark.parametrize("path", modules(*SANS_IO), ids=lambda p: str(p.relative_to(SRC)))
def test_sans_io_layers_touch_no_clock_thread_or_socket(path: Path) -> None:
    bad = {m for m in imports(path) if m.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules("protocol", "channels", "render", "codecs", "video",
                                         "audio", "input"),
                         ids=lambda p: str(p.relative_to(SRC)))
def test_lower_layers_do_not_import_front_ends(path: Path) -> None:
    bad = {m for m in imports(path)
           if m.startswith("ryll.") and m.split(".")[1] in ABOVE}
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


@pytest.mark.parametrize("name", VIEWER_PURE)
def test_the_viewers_pieces_are_sans_io(name: str) -> None:
    bad = {m for m in imports(SRC / "viewer" / name) if m.split(".")[0] in FORBIDDEN}
    assert not bad, f"viewer/{name} imports {sorted(bad)}"
