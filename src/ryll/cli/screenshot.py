"""``--screenshot``: the primary surface of each monitor as PNG (Pillow writes it)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ryll.session.session import Session


def screenshot_paths(path: Path, count: int) -> list[Path]:
    """``PATH`` for one monitor; ``PATH-1``, ``PATH-2``... (before the suffix) for several."""
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, count + 1)]


def write_screenshots(session: Session, path: Path) -> list[Path]:
    surfaces = []
    for display in sorted(session.display_channels(), key=lambda d: d.channel_id):
        primary = [s for s in display.surfaces.values() if s.primary]
        surfaces.extend(sorted(primary, key=lambda s: s.surface_id))
    paths = screenshot_paths(path, len(surfaces))
    for surface, out in zip(surfaces, paths, strict=True):
        if surface.has_alpha:
            img = Image.fromarray(surface.pixels[..., [2, 1, 0, 3]], "RGBA")
        else:
            img = Image.fromarray(surface.rgb(), "RGB")
        img.save(out, format="PNG")
    return paths
