"""What a page has not been sent yet: the damaged rectangles of each display (sans-IO).

Damage accumulates while a page is being sent the previous picture, so a slow page gets fewer,
larger updates instead of a queue that grows: a backlog is at most MAX_RECTS rectangles a
display (beyond that, or when rectangles overlap, they merge into their bounding box), and
``take`` hands over everything at once.
"""

from __future__ import annotations

from ryll.protocol.messages.draw import Rect

MAX_RECTS = 32


def _touch(a: Rect, b: Rect) -> bool:
    return (a.left <= b.right and b.left <= a.right and a.top <= b.bottom
            and b.top <= a.bottom)


def _union(a: Rect, b: Rect) -> Rect:
    return Rect(min(a.top, b.top), min(a.left, b.left), max(a.bottom, b.bottom),
                max(a.right, b.right))


class Damage:
    def __init__(self) -> None:
        self._rects: dict[int, list[Rect]] = {}
        self._whole: set[int] = set()

    def __bool__(self) -> bool:
        return bool(self._rects) or bool(self._whole)

    def add(self, display: int, rect: Rect) -> None:
        if display in self._whole or rect.right <= rect.left or rect.bottom <= rect.top:
            return
        rects = self._rects.setdefault(display, [])
        # Merge with what it touches, repeatedly (a union may touch more).
        merged = rect
        changed = True
        while changed:
            changed = False
            for r in rects:
                if _touch(r, merged):
                    rects.remove(r)
                    merged = _union(r, merged)
                    changed = True
                    break
        rects.append(merged)
        if len(rects) > MAX_RECTS:
            box = rects[0]
            for r in rects[1:]:
                box = _union(box, r)
            self._rects[display] = [box]

    def whole(self, display: int) -> None:
        """All of the display (a new page, a mode change, lost events)."""
        self._rects.pop(display, None)
        self._whole.add(display)

    def take(self) -> tuple[set[int], dict[int, list[Rect]]]:
        """(displays to send whole, {display: rectangles}), and nothing is pending after."""
        whole, rects = self._whole, self._rects
        self._whole, self._rects = set(), {}
        return whole, rects
