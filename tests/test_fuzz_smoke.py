"""A short run of every fuzz harness (fuzz/), the found crashes as regression fixtures, and
the fallback engine's own machinery.

The long runs are ``scripts/fuzz.sh [SECONDS]`` (see fuzz/README.md); here each target gets a
few hundred inputs of the dependency-free engine, with a fixed RNG seed, so the harnesses stay
runnable and the contract (only RyllErrors, no ``:internal:`` gap, no hang) holds for them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fuzz.contract import InternalGap, check_gaps, quiet_ryll_logs
from fuzz.engine import CRASH_DIR, Runner, TimerInstalled, fuzz, replay
from fuzz.registry import TARGETS

from ryll.errors import ProtocolError
from ryll.gaps import GapRegistry

MESSAGES = Path(__file__).parents[1] / "src" / "ryll" / "protocol" / "messages"
REQUIRED = {"quic", "lz", "glz", "lz4", "bitmap", "cursor", "mjpeg", "framer", "link_reply",
            "agent", "display_channel", "pcap_read", "audio_port_channels"}
# Per target: at most this many inputs or seconds, whichever ends first; the smallest seeds.
INPUTS, SECONDS, SEEDS = 1000, 2.0, 16
REPRODUCERS = sorted(CRASH_DIR.glob("*.bin")) if CRASH_DIR.is_dir() else []


def test_the_registry_covers_every_target() -> None:
    parsers = {f"msg_{p.stem}" for p in MESSAGES.glob("*.py") if p.stem != "__init__"}
    assert parsers == {"msg_audio", "msg_base", "msg_cursor", "msg_display", "msg_draw",
                       "msg_inputs", "msg_main", "msg_port", "msg_stream"}
    missing = (REQUIRED | parsers) - set(TARGETS)
    assert not missing, f"no harness for {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_short_fuzz_run_finds_nothing(name: str, tmp_path: Path) -> None:
    target = TARGETS[name]
    seeds = sorted(target.seeds(), key=len)
    assert seeds, f"{name} has no seeds"
    stats = fuzz(name, target.one_input, seeds[:SEEDS], SECONDS, max_inputs=INPUTS, seed=1,
                 crash_dir=tmp_path, echo=None, minimise_s=0)
    assert stats.inputs >= min(len(seeds), SEEDS)
    assert not stats.crashes, "\n\n".join(f"{c.signature}\n{c.report}" for c in stats.crashes)


@pytest.mark.parametrize("path", REPRODUCERS, ids=[p.name for p in REPRODUCERS])
def test_a_found_crash_stays_fixed(path: Path) -> None:
    target = TARGETS[path.name.split("-", 1)[0]]
    outcome = replay(target.one_input, path.read_bytes())
    assert outcome.ok, f"{outcome.signature}\n{outcome.report}"


# --- the engine -------------------------------------------------------------------------------


def test_the_fallback_engine_finds_a_planted_bug(tmp_path: Path) -> None:
    def harness(data: bytes) -> None:
        try:
            if b"\xff\xff" in data:
                raise KeyError("planted")
            if len(data) > 6:
                raise ProtocolError("too long")  # allowed: a RyllError
        except ProtocolError:
            pass

    stats = fuzz("planted", harness, [b"\0" * 6], 5.0, max_inputs=3000, seed=3,
                 crash_dir=tmp_path, echo=None)
    assert [c.signature.split(" at ")[0] for c in stats.crashes] == ["KeyError"]
    [crash] = stats.crashes
    assert crash.path is not None and crash.path.name.startswith("planted-")
    assert b"\xff\xff" in crash.path.read_bytes() and crash.size <= 6  # minimised


def test_an_input_over_the_time_limit_is_a_hang() -> None:
    def slow(data: bytes) -> None:
        time.sleep(5)

    with TimerInstalled():
        outcome = Runner(slow, timeout=0.2).run(b"x")
    assert not outcome.ok and outcome.kind == "timeout"
    assert outcome.elapsed < 2


def test_an_internal_gap_is_a_failure() -> None:
    gaps = GapRegistry()
    gaps.register("display:malformed:draw_copy", "fine: a named gap")
    check_gaps(gaps)
    gaps.register("display:internal:draw_copy", "IndexError: boom")
    with quiet_ryll_logs(), pytest.raises(InternalGap) as info:
        check_gaps(gaps)
    assert info.value.signature.startswith("display:internal:draw_copy")
