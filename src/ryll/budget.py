"""One memory budget per session: what the server can make ryll hold, bounded in bytes.

Everything the wire makes ryll allocate is asked for here *before* it is allocated:

- what is kept (surfaces, the image cache, the GLZ dictionary, the cursor cache) is measured
  by *meters*, functions each holder registers that say how many bytes it holds now, so the
  count can never drift from the truth (nothing to release by hand);
- what a message needs while it is handled (a decoded image, a stream frame) is asked for with
  :meth:`MemoryBudget.require` on top of what is kept;
- what can be dropped (the image cache) registers a *reclaimer*, which a request that does not
  fit asks to give memory back first: a cache yields to a surface or a decode.

Over the budget the request is refused and counted; the caller turns it into the gap
``<channel>:over_budget:<what>`` and the session carries on with what it has. Sans-IO: a
counter and some functions, no locks (display work is serialised by the session).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ryll.errors import RyllError

# Enough for real use (a 4K monitor's surfaces, a full image cache, the largest GLZ window)
# with room to spare; --max-memory-mib changes it.
DEFAULT_LIMIT = 1024 * 1024 * 1024
MIB = 1024 * 1024


class OverBudget(RyllError):
    """An allocation the session's memory budget refused. ``what`` names it for the gap key
    (``surface_create``, ``image``, ``stream_frame``...)."""

    exit_code = 11

    def __init__(self, what: str, need: int, budget: MemoryBudget) -> None:
        super().__init__(f"{what}: {need / MIB:.1f} MiB would exceed the memory budget "
                         f"({budget.used() / MIB:.1f} of {budget.limit / MIB:.0f} MiB in use)")
        self.what = what
        self.need = need


class MemoryBudget:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit <= 0:
            raise ValueError("the memory budget must be positive")
        self.limit = limit
        self._meters: list[tuple[str, Callable[[], int]]] = []
        self._reclaimers: list[Callable[[int], None]] = []
        self.refused: Counter[str] = Counter()
        self.peak = 0

    def meter(self, kind: str, held: Callable[[], int]) -> None:
        """Count what ``held()`` says (bytes, now) as ``kind`` from now on."""
        self._meters.append((kind, held))

    def reclaimer(self, free: Callable[[int], None]) -> None:
        """``free(n)`` drops about ``n`` bytes of what can be dropped (least useful first)."""
        self._reclaimers.append(free)

    def by_kind(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for kind, held in self._meters:
            out[kind] += held()
        return dict(out)

    def used(self) -> int:
        return sum(held() for _, held in self._meters)

    def fits(self, need: int, freed: int = 0) -> bool:
        """Whether ``need`` more bytes (after ``freed`` are given back) stay in the budget."""
        total = self.used() - freed + need
        return total <= self.limit

    def require(self, what: str, need: int, freed: int = 0) -> None:
        """Raise OverBudget (and count it) unless ``need`` bytes fit; note the peak if so."""
        total = self.used() - freed + need
        for free in self._reclaimers:
            if total <= self.limit:
                break
            free(total - self.limit)
            total = self.used() - freed + need
        if total > self.limit:
            self.refused[what] += 1
            raise OverBudget(what, need, self)
        self.peak = max(self.peak, total)

    def as_dict(self) -> dict[str, object]:
        return {
            "limit_bytes": self.limit,
            "used_bytes": self.used(),
            "peak_bytes": max(self.peak, self.used()),
            "by_kind": self.by_kind(),
            "refused": dict(self.refused),
        }
