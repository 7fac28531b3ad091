"""The fuzzing engine that needs nothing but the standard library: coverage-guided mutation of
seed inputs, with line-pair coverage of ryll's own Python code measured by ``sys.settrace``.

One iteration: pick a corpus entry, stack a few mutations on it (bit flips, byte changes,
inserts, deletes, copies, splices with another entry, integer fields set to boundary values),
run the harness under the tracer, and keep the input if it reached a (line, previous line)
pair of a file under ``src/ryll`` not seen before. The corpus is bounded in entries and
bytes. Each input runs under a time limit (``signal.setitimer`` on the main thread); the
process's peak RSS is read after each one.

A failure is any exception escaping the harness (harnesses catch exactly what ryll may raise),
an input over the time limit, or the peak RSS crossing the limit. Each new failure signature
(exception type and innermost ryll frame) is minimised a little and written to
``fuzz/crashes/<target>-<sha1>.bin``.

Compiled code (the Cython codecs, numpy, libjpeg, libav) is not traced: the fallback sees it
only through the Python lines around it. atheris (see driver.py) instruments the same Python
and adds libFuzzer's mutators; neither sees inside the Cython loops.
"""

from __future__ import annotations

import hashlib
import random
import resource
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from fuzz.contract import REPO, RYLL_SRC, innermost, quiet_ryll_logs, reset_log_record

OneInput = Callable[[bytes], None]
CRASH_DIR = REPO / "fuzz" / "crashes"

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_RSS_LIMIT_MB = 3072  # ryll's default memory budget is 1 GiB; twice that plus Python
MAX_INPUT = 1 << 20
MAX_CORPUS = 512
MAX_CORPUS_BYTES = 64 << 20


class FuzzTimeout(BaseException):
    """Raised in the harness by the per-input timer (a BaseException, so no ``except
    Exception`` in ryll can swallow it)."""


# --- coverage ------------------------------------------------------------------------------


class Coverage:
    """(code, previous line, line) triples executed in files under ``src/ryll``."""

    def __init__(self, prefix: str = RYLL_SRC) -> None:
        self.prefix = prefix
        self.current: set[tuple[CodeType, int, int]] = set()
        self._wanted: dict[CodeType, bool] = {}

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        wanted = self._wanted.get(code)
        if wanted is None:
            wanted = self._wanted[code] = code.co_filename.startswith(self.prefix)
        if not wanted:
            return None
        cur = self.current
        prev = 0

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            nonlocal prev
            if event == "line":
                line = frame.f_lineno
                cur.add((code, prev, line))
                prev = line
            return local

        return local

    def start(self) -> None:
        self.current = set()
        sys.settrace(self._global)

    def stop(self) -> set[tuple[CodeType, int, int]]:
        sys.settrace(None)
        return self.current


# --- running one input ---------------------------------------------------------------------


@dataclass
class Outcome:
    ok: bool
    elapsed: float
    kind: str = ""  # "exception", "timeout", "rss"
    signature: str = ""
    report: str = ""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise FuzzTimeout()


def peak_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class Runner:
    """Runs inputs through one harness with the time limit, and classifies what happened."""

    def __init__(self, one_input: OneInput, timeout: float = DEFAULT_TIMEOUT_S,
                 rss_limit_mb: int = DEFAULT_RSS_LIMIT_MB) -> None:
        self.one_input = one_input
        self.timeout = timeout
        self.rss_limit_kib = rss_limit_mb * 1024
        self._rss_reported = False
        self._use_timer = threading.current_thread() is threading.main_thread()

    def run(self, data: bytes) -> Outcome:
        reset_log_record()
        timer = self._use_timer and self.timeout > 0
        if timer:
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
        start = time.perf_counter()
        try:
            try:
                self.one_input(data)
            finally:  # disarmed here, so an alarm at the very end still lands in this try
                if timer:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except FuzzTimeout:
            elapsed = time.perf_counter() - start
            stack = traceback.extract_tb(sys.exc_info()[2])[:-1]  # not the alarm handler
            where = innermost(stack)
            return Outcome(False, elapsed, "timeout", f"timeout at {where}",
                           f"input ran over {self.timeout:.1f} s; interrupted at:\n"
                           + "".join(traceback.format_list(stack[-6:])))
        except Exception as exc:
            elapsed = time.perf_counter() - start
            sig = getattr(exc, "signature", None)
            if not isinstance(sig, str):
                where = innermost(traceback.extract_tb(exc.__traceback__))
                sig = f"{type(exc).__name__} at {where}"
            return Outcome(False, elapsed, "exception", sig, traceback.format_exc())
        elapsed = time.perf_counter() - start
        if self.timeout > 0 and elapsed > self.timeout:
            return Outcome(False, elapsed, "timeout", "timeout (no timer)",
                           f"input took {elapsed:.2f} s, over {self.timeout:.1f} s")
        if not self._rss_reported and peak_rss_kib() > self.rss_limit_kib:
            self._rss_reported = True
            return Outcome(False, elapsed, "rss", "peak RSS over the limit",
                           f"peak RSS {peak_rss_kib() // 1024} MiB crossed the limit of "
                           f"{self.rss_limit_kib // 1024} MiB during this input")
        return Outcome(True, elapsed)


class TimerInstalled:
    """Installs the SIGALRM handler for the per-input timer, and puts back whatever was there
    (pytest-timeout's alarm, say) with its remaining time."""

    def __enter__(self) -> TimerInstalled:
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.old_timer = signal.getitimer(signal.ITIMER_REAL)
            self.started = time.monotonic()
            self.old_handler = signal.signal(signal.SIGALRM, _alarm)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old_handler)
        remaining, interval = self.old_timer
        if remaining > 0:
            left = max(remaining - (time.monotonic() - self.started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, interval)


# --- mutation -------------------------------------------------------------------------------

INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
_INT = {1: "B", 2: "H", 4: "I", 8: "Q"}


class Mutator:
    def __init__(self, rng: random.Random, max_len: int = MAX_INPUT) -> None:
        self.rng = rng
        self.max_len = max_len

    def mutate(self, data: bytes, corpus: Sequence[bytes]) -> bytes:
        buf = bytearray(data)
        for _ in range(1 + min(int(self.rng.expovariate(0.9)), 6)):
            self._one(buf, corpus)
        del buf[self.max_len:]
        return bytes(buf)

    def _one(self, buf: bytearray, corpus: Sequence[bytes]) -> None:
        rng = self.rng
        n = len(buf)
        op = rng.randrange(12)
        if n == 0:
            buf += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            return
        pos = rng.randrange(n)
        if op == 0:  # flip a bit
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1:  # a random byte
            buf[pos] = rng.randrange(256)
        elif op == 2:  # a small arithmetic step
            buf[pos] = (buf[pos] + rng.choice((-1, 1)) * rng.randint(1, 35)) & 0xFF
        elif op == 3:  # insert bytes
            k = rng.choice((1, 1, 2, 4, 8, rng.randint(1, 64)))
            fill = bytes(rng.randrange(256) for _ in range(k)) if rng.random() < 0.7 \
                else bytes([rng.randrange(256)]) * k
            buf[pos:pos] = fill
        elif op == 4:  # delete a range
            k = min(n - pos, rng.choice((1, 2, 4, 8, rng.randint(1, max(1, n // 4)))))
            del buf[pos:pos + k]
        elif op == 5:  # copy a range over another place (or insert it)
            k = rng.randint(1, min(n, 256))
            src = rng.randrange(n - k + 1)
            chunk = bytes(buf[src:src + k])
            if rng.random() < 0.5:
                buf[pos:pos + k] = chunk
            else:
                buf[pos:pos] = chunk
        elif op == 6 and corpus:  # splice with another entry
            other = rng.choice(corpus)
            if other:
                cut = rng.randrange(len(other))
                buf[pos:] = other[cut:]
        elif op == 7:  # truncate
            del buf[max(pos, 1):]
        elif op in (8, 9, 10):  # an integer field set to a boundary value or nudged
            width = rng.choice((4, 4, 2, 1, 8)) if op != 10 else 4
            if n < width:
                return
            if op == 10 or rng.random() < 0.6:  # aligned, as most SPICE fields are
                pos = rng.randrange(0, n - width + 1, width) if n >= width else 0
            else:
                pos = rng.randrange(n - width + 1)
            order = "<" if rng.random() < 0.75 else ">"
            fmt = order + _INT[width]
            mask = (1 << (8 * width)) - 1
            if rng.random() < 0.6:
                value = rng.choice(INTERESTING) & mask
            else:
                (old,) = struct.unpack_from(fmt, buf, pos)
                value = (old + rng.choice((-1, 1)) * rng.choice((1, 2, 3, 4, 8, 16, 255, old or 1))
                         ) & mask
            struct.pack_into(fmt, buf, pos, value)
        else:  # overwrite with a run of one byte
            k = min(n - pos, rng.randint(1, 32))
            buf[pos:pos + k] = bytes([rng.choice((0, 0xFF, rng.randrange(256)))]) * k


# --- the loop -------------------------------------------------------------------------------


@dataclass
class Crash:
    signature: str
    kind: str
    path: Path | None
    size: int
    report: str


@dataclass
class Stats:
    target: str
    inputs: int = 0
    failures: int = 0  # failing inputs, repeats of a known signature included
    crashes: list[Crash] = field(default_factory=list)  # one per signature
    peak_rss_kib: int = 0
    slowest_ms: float = 0.0
    corpus: int = 0
    features: int = 0
    seconds: float = 0.0

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024


Hook = Callable[[bytes | None, Stats], None]


def save_crash(target: str, data: bytes, crash_dir: Path = CRASH_DIR) -> Path:
    crash_dir.mkdir(parents=True, exist_ok=True)
    path = crash_dir / f"{target}-{hashlib.sha1(data).hexdigest()}.bin"
    path.write_bytes(data)
    return path


def minimise(runner: Runner, data: bytes, signature: str, budget_s: float = 2.0) -> bytes:
    """Shrink a failing input while it fails with the same signature (chunk deletions, then
    trailing bytes), within ``budget_s``."""
    deadline = time.monotonic() + budget_s
    best = data
    chunk = max(len(best) // 2, 1)
    while chunk >= 1 and time.monotonic() < deadline:
        pos, progressed = 0, False
        while pos < len(best) and time.monotonic() < deadline:
            cand = best[:pos] + best[pos + chunk:]
            out = runner.run(cand)
            if not out.ok and out.signature == signature:
                best, progressed = cand, True
            else:
                pos += chunk
        if not progressed:
            chunk //= 2
    return best


def fuzz(
    target: str,
    one_input: OneInput,
    seeds: Sequence[bytes],
    seconds: float,
    max_inputs: int | None = None,
    seed: int = 0,
    timeout: float = DEFAULT_TIMEOUT_S,
    rss_limit_mb: int = DEFAULT_RSS_LIMIT_MB,
    crash_dir: Path | None = CRASH_DIR,
    hook: Hook | None = None,
    echo: Callable[[str], None] | None = print,
    minimise_s: float = 2.0,
    known: dict[str, Path] | None = None,
) -> Stats:
    """Fuzz one harness for ``seconds`` (or ``max_inputs`` inputs, whichever ends first).

    ``crash_dir`` None: failures are counted and reported but not written. ``known``: the
    signatures of reproducers already saved (the driver replays them first), not saved again.
    ``hook(data, stats)`` is called before each input (with it) and after (with None): the
    driver's supervisor reads both. Returns the run's statistics.
    """
    rng = random.Random(seed)
    stats = Stats(target)
    start = time.monotonic()
    deadline = start + seconds
    max_len = min(MAX_INPUT, max([4096, *(2 * len(s) for s in seeds)]))
    mutator = Mutator(rng, max_len)
    runner = Runner(one_input, timeout, rss_limit_mb)
    cov = Coverage()
    seen: set[tuple[CodeType, int, int]] = set()
    corpus: list[bytes] = []
    corpus_bytes = 0
    n_seeds = 0
    signatures: dict[str, Crash] = {}
    slowest = SlowInputs()

    def done() -> bool:
        if max_inputs is not None and stats.inputs >= max_inputs:
            return True
        return time.monotonic() >= deadline

    def execute(data: bytes) -> tuple[Outcome, set[tuple[CodeType, int, int]]]:
        if hook is not None:
            hook(data, stats)
        cov.start()
        try:
            out = runner.run(data)
        finally:
            lines = cov.stop()
        if out.kind == "timeout":  # the tracer slows everything down: confirm without it
            out = runner.run(data)
        stats.inputs += 1
        stats.peak_rss_kib = max(stats.peak_rss_kib, peak_rss_kib())
        if out.ok:
            slowest.offer(out.elapsed, data)
        else:
            record(data, out)
        if hook is not None:
            hook(None, stats)
        return out, lines

    def record(data: bytes, out: Outcome) -> None:
        stats.failures += 1
        if out.signature in signatures:
            return
        if known and out.signature in known:
            crash = Crash(out.signature, out.kind, known[out.signature], len(data), out.report)
            signatures[out.signature] = crash
            stats.crashes.append(crash)
            if echo is not None:
                echo(f"[{target}] known crash {out.signature}: {known[out.signature]}")
            return
        small = data
        if out.kind == "exception" and minimise_s > 0:
            small = minimise(runner, data, out.signature, minimise_s)
        path = save_crash(target, small, crash_dir) if crash_dir is not None else None
        crash = Crash(out.signature, out.kind, path, len(small), out.report)
        signatures[out.signature] = crash
        stats.crashes.append(crash)
        if echo is not None:
            where = path if path is not None else "(not saved)"
            echo(f"[{target}] CRASH {out.signature} ({len(small)} bytes): {where}\n"
                 f"{out.report.rstrip()}")

    def add(data: bytes, is_seed: bool) -> None:
        nonlocal corpus_bytes, n_seeds
        corpus.append(data)
        corpus_bytes += len(data)
        if is_seed:
            n_seeds += 1
            return
        while (len(corpus) > MAX_CORPUS or corpus_bytes > MAX_CORPUS_BYTES) and \
                len(corpus) > n_seeds + 1:
            victim = rng.randrange(n_seeds, len(corpus) - 1)  # never a seed or the newest
            corpus_bytes -= len(corpus[victim])
            del corpus[victim]

    with quiet_ryll_logs(), TimerInstalled():
        for data in dict.fromkeys(s[:max_len] for s in seeds):
            if done():
                break
            _, lines = execute(data)
            seen |= lines
            add(data, True)
        if not corpus:
            add(b"", True)
        while not done():
            # the shorter of two entries, mostly: small inputs run faster and mutate deeper
            parent = corpus[rng.randrange(len(corpus))]
            if rng.random() < 0.7:
                other = corpus[rng.randrange(len(corpus))]
                parent = other if len(other) < len(parent) else parent
            child = mutator.mutate(parent, corpus)
            out, lines = execute(child)
            new = lines - seen
            if new and out.ok:
                seen |= new
                add(child, False)
        # The slowest inputs again, untraced: their real cost.
        stats.slowest_ms = retime(one_input, [data for _, data in slowest.items])
    stats.corpus = len(corpus)
    stats.features = len(seen)
    stats.seconds = time.monotonic() - start
    return stats


class SlowInputs:
    """The few inputs that took longest (as measured while fuzzing, so with the tracer's or a
    collector's noise): kept to be re-timed by ``retime``."""

    def __init__(self, keep: int = 5) -> None:
        self.keep = keep
        self.items: list[tuple[float, bytes]] = []

    def offer(self, elapsed: float, data: bytes) -> bool:
        """True when ``data`` joined the list."""
        if len(self.items) >= self.keep and elapsed <= self.items[0][0]:
            return False
        self.items.append((elapsed, data))
        self.items.sort(key=lambda item: item[0])
        del self.items[:-self.keep]
        return True


def retime(one_input: OneInput, inputs: Sequence[bytes], repeats: int = 3) -> float:
    """The slowest of ``inputs`` in ms, each the best of ``repeats`` runs (no tracer)."""
    worst = 0.0
    with quiet_ryll_logs():
        for data in inputs:
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                try:
                    one_input(data)
                except Exception:
                    pass
                best = min(best, time.perf_counter() - t0)
            worst = max(worst, best * 1000)
    return worst


def replay(one_input: OneInput, data: bytes, timeout: float = DEFAULT_TIMEOUT_S) -> Outcome:
    """Run one input once (no tracing), as the regression test and ``--replay`` do."""
    with quiet_ryll_logs(), TimerInstalled():
        return Runner(one_input, timeout).run(data)
