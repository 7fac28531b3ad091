"""InputController against a stand-in session: keys, combos, text, pointer by mouse mode; and
the LatencyTracker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ryll.channels.base import Channel
from ryll.channels.context import ChannelContext
from ryll.channels.cursor import CursorChannel
from ryll.channels.events import DisplayMarked, LatencyMeasured, PasteCompleted, SessionEnded
from ryll.channels.inputs import InputsChannel
from ryll.cli.headless import LatencyFile
from ryll.input.keys import KeyNameError
from ryll.protocol.constants import ChannelType, InputsClient
from ryll.protocol.framing import MessageFramer
from ryll.protocol.messages import inputs as msgs
from ryll.session.bus import EventBus
from ryll.session.input import MAX_TEXT, InputController, InputUnavailable
from ryll.session.latency import LatencyTracker

DOWN, UP = InputsClient.KEY_DOWN, InputsClient.KEY_UP


@dataclass
class FakeSession:
    ctx: ChannelContext = field(default_factory=ChannelContext)
    channels: dict[tuple[int, int], Channel] = field(default_factory=dict)
    latency: LatencyTracker = field(default_factory=LatencyTracker)
    written: list[tuple[int, bytes]] = field(default_factory=list)
    published: list[object] = field(default_factory=list)
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)

    def display_size(self, display: int = 0) -> tuple[int, int] | None:
        return self.sizes.get(display)

    def publish(self, event: object) -> None:
        self.published.append(event)

    def channel(self, channel_type: int, channel_id: int = 0) -> Channel | None:
        return self.channels.get((channel_type, channel_id))

    def flush(self, channel: Channel) -> None:
        self.written += [(m.type, m.body) for m in MessageFramer(True).feed(channel.data_to_send())]


def controller(mouse_mode: int = 1) -> tuple[InputController, FakeSession, InputsChannel]:
    s = FakeSession()
    s.ctx.state.current_mouse_mode = mouse_mode
    ch = InputsChannel(0, s.ctx)
    s.channels[(ChannelType.INPUTS, 0)] = ch
    return InputController(s), s, ch  # type: ignore[arg-type]


def keys(s: FakeSession) -> list[tuple[str, int]]:
    """(down|up, scancode) of the key messages written."""
    out = []
    for op, body in s.written:
        code = int.from_bytes(body, "little")
        if code & 0xFF == 0xE0:
            code = 0x100 | (code >> 8)
        if op in (DOWN, UP):
            out.append(("down" if op == DOWN else "up", code & ~0x80))
    return out


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_press_key_combo_order() -> None:
    inp, s, _ = controller()
    run(inp.press_key("ctrl-alt-delete"))
    assert keys(s) == [("down", 0x1D), ("down", 0x38), ("down", 0x153),
                       ("up", 0x153), ("up", 0x38), ("up", 0x1D)]
    assert inp.held == ()


def test_key_down_and_up_hold_keys() -> None:
    inp, s, _ = controller()
    inp.key_down("shift-Up")
    assert inp.held == (0x2A, 0x148)
    inp.key_up("shift-Up")
    assert keys(s) == [("down", 0x2A), ("down", 0x148), ("up", 0x148), ("up", 0x2A)]
    with pytest.raises(KeyNameError):
        inp.key_down("hyper")


def test_type_text_releases_and_restores_held_modifiers() -> None:
    inp, s, _ = controller()
    inp.key_down("ctrl")
    s.written.clear()
    done = run(inp.type_text("aB\n", char_delay_ms=0))
    assert isinstance(done, PasteCompleted) and done.characters == 3
    assert s.published == [done]  # the event every front end sees
    assert keys(s) == [
        ("up", 0x1D),
        ("down", 0x1E), ("up", 0x1E),
        ("down", 0x2A), ("down", 0x30), ("up", 0x30), ("up", 0x2A),
        ("down", 0x1C), ("up", 0x1C),
        ("down", 0x1D),
    ]
    assert inp.held == (0x1D,)


def test_type_text_with_caps_lock_types_what_is_written() -> None:
    inp, s, ch = controller()
    ch.modifiers = 4  # caps lock on in the guest
    run(inp.type_text("aA1", char_delay_ms=0))
    assert keys(s) == [("down", 0x2A), ("down", 0x1E), ("up", 0x1E), ("up", 0x2A),
                       ("down", 0x1E), ("up", 0x1E), ("down", 0x02), ("up", 0x02)]


def test_type_text_refuses_before_sending() -> None:
    inp, s, _ = controller()
    with pytest.raises(KeyNameError):
        run(inp.type_text("ok\u00e9"))
    with pytest.raises(ValueError, match="limit"):
        run(inp.type_text("a" * (MAX_TEXT + 1)))
    assert s.written == []


def test_no_inputs_channel() -> None:
    inp = InputController(FakeSession())  # type: ignore[arg-type]
    assert not inp.ready
    with pytest.raises(InputUnavailable):
        inp.key_down("a")
    with pytest.raises(InputUnavailable):
        inp.mouse_move(1, 1)


def test_client_mode_sends_positions() -> None:
    inp, s, _ = controller(mouse_mode=2)
    assert inp.client_mouse
    inp.mouse_move(100, 200, display_id=1)
    inp.mouse_move_relative(-150, 5)  # clamped at the left edge
    run(inp.click("right"))
    assert s.written == [
        (InputsClient.MOUSE_POSITION, msgs.build_mouse_position(100, 200, 0, 1)),
        (InputsClient.MOUSE_POSITION, msgs.build_mouse_position(0, 205, 0, 1)),
        (InputsClient.MOUSE_PRESS, msgs.build_mouse_button(3, 4)),
        (InputsClient.MOUSE_RELEASE, msgs.build_mouse_button(3, 0)),
    ]


def test_server_mode_sends_motion_deltas() -> None:
    inp, s, _ = controller(mouse_mode=1)
    inp.mouse_move(100, 50)
    inp.mouse_move(90, 70)
    inp.mouse_move_relative(5, -5)
    run(inp.click("left", 0, 0))
    motions = [body for op, body in s.written if op == InputsClient.MOUSE_MOTION]
    assert motions == [msgs.build_mouse_motion(100, 50, 0), msgs.build_mouse_motion(-10, 20, 0),
                       msgs.build_mouse_motion(5, -5, 0), msgs.build_mouse_motion(-95, -65, 0)]
    assert [op for op, _ in s.written][-2:] == [InputsClient.MOUSE_PRESS,
                                                 InputsClient.MOUSE_RELEASE]
    with pytest.raises(ValueError):
        run(inp.click("left", 5))


def test_server_mode_follows_the_cursor_channel() -> None:
    inp, s, _ = controller(mouse_mode=1)
    cursor = CursorChannel(0, s.ctx)
    s.channels[(ChannelType.CURSOR, 0)] = cursor
    cursor.x, cursor.y = 300, 200  # the guest's pointer, as the server draws it
    inp.mouse_move(310, 180)
    assert s.written[-1][1] == msgs.build_mouse_motion(10, -20, 0)
    inp.mouse_move(320, 180)  # cursor channel unchanged: our own tracking
    assert s.written[-1][1] == msgs.build_mouse_motion(10, 0, 0)
    cursor.x, cursor.y = 400, 400  # guest acceleration moved it further
    inp.mouse_move(410, 400)
    assert s.written[-1][1] == msgs.build_mouse_motion(10, 0, 0)


def test_mouse_buttons_by_name_and_number() -> None:
    inp, s, _ = controller()
    inp.mouse_down("middle")
    inp.mouse_up(2)
    inp.mouse_down("up")
    assert s.written == [(InputsClient.MOUSE_PRESS, b"\x02\x02\0"),
                         (InputsClient.MOUSE_RELEASE, b"\x02\0\0"),
                         (InputsClient.MOUSE_PRESS, b"\x04\0\0")]
    with pytest.raises(KeyNameError):
        inp.mouse_down("thumb")


def test_keys_start_latency_measurements() -> None:
    inp, s, _ = controller()
    inp.key_down("shift")  # a modifier alone changes nothing on screen
    assert not s.latency.pending
    inp.key_down("a")
    assert s.latency.pending


# --- LatencyTracker ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_latency_samples_and_summary() -> None:
    clock = Clock()
    lat = LatencyTracker(clock=clock, wall_clock=lambda: 1.7e9, timeout_s=5)
    seen: list[LatencyMeasured] = []
    assert lat.display_updated() is None  # no key: nothing
    for delay in (0.010, 0.030, 0.020):
        lat.key_sent()
        clock.t += 0.005
        lat.key_sent()  # a burst measures from its first key
        clock.t += delay - 0.005
        sample = lat.display_updated()
        assert sample is not None
        seen.append(sample)
        assert lat.display_updated() is None  # only the first update answers
        clock.t += 1
    assert seen == [LatencyMeasured(1.7e9, 10.0), LatencyMeasured(1.7e9, 30.0),
                    LatencyMeasured(1.7e9, 20.0)]
    assert lat.summary() == {"count": 3, "unanswered": 0, "min_ms": 10.0, "median_ms": 20.0,
                             "p95_ms": 30.0, "max_ms": 30.0}


def test_latency_file_writes_each_published_sample(tmp_path: Path) -> None:
    """--latency-file is a front end: it reads LatencyMeasured from its subscription and
    flushes a CSV line per sample, until SessionEnded."""
    csv_path = tmp_path / "lat.csv"

    async def scenario() -> None:
        bus = EventBus()
        events = bus.subscribe(*LatencyFile.kinds)
        task = asyncio.ensure_future(LatencyFile(csv_path).run(None, events))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        for ms in (10.0, 30.5):
            bus.publish(LatencyMeasured(1.7e9, ms))
            bus.publish(DisplayMarked(0))  # not for this front end
        await asyncio.sleep(0.01)
        assert csv_path.read_text().splitlines()[-1] == "1700000000.000,30.500"  # flushed
        bus.publish(SessionEnded("done", "", 0))
        await asyncio.wait_for(task, 2)

    asyncio.run(scenario())
    assert csv_path.read_text().splitlines() == [
        "time,latency_ms", "1700000000.000,10.000", "1700000000.000,30.500"]


def test_latency_timeout_and_empty_summary() -> None:
    clock = Clock()
    lat = LatencyTracker(clock=clock, timeout_s=5)
    assert lat.summary() == {"count": 0, "unanswered": 0, "min_ms": None, "median_ms": None,
                             "p95_ms": None, "max_ms": None}
    lat.key_sent()
    clock.t += 6
    lat.key_sent()  # the old one expired: measure from this one
    clock.t += 0.05
    lat.display_updated()
    lat.key_sent()
    clock.t += 7
    lat.display_updated()  # too late to be this key's answer
    s = lat.summary()
    assert s["count"] == 1 and s["unanswered"] == 2 and s["min_ms"] == 50.0


def test_absolute_positions_are_clamped_to_the_display() -> None:
    inp, s, _ = controller(mouse_mode=2)
    s.sizes = {0: (640, 480), 1: (1024, 768)}
    inp.mouse_move(5000, -20)
    inp.mouse_move(1000, 700, display_id=1)
    inp.mouse_move(-1, 99999, display_id=1)
    inp.mouse_move_relative(5000, 0)
    inp.mouse_move(7, 8, display_id=3)  # no such display: only negatives are raised
    assert [body for _, body in s.written] == [
        msgs.build_mouse_position(639, 0, 0, 0),
        msgs.build_mouse_position(1000, 700, 0, 1),
        msgs.build_mouse_position(0, 767, 0, 1),
        msgs.build_mouse_position(1023, 767, 0, 1),
        msgs.build_mouse_position(7, 8, 0, 3),
    ]


def test_server_mode_clamps_to_the_primary_display() -> None:
    inp, s, _ = controller(mouse_mode=1)
    s.sizes = {0: (640, 480)}
    inp.mouse_move(100, 100)
    inp.mouse_move(900, 900)
    assert [body for _, body in s.written] == [
        msgs.build_mouse_motion(100, 100, 0), msgs.build_mouse_motion(539, 379, 0)]


def test_typing_never_goes_below_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    from ryll.session import input as input_module

    inp, s, _ = controller()
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(input_module.asyncio, "sleep", sleep)
    run(inp.type_text("abc", 0))
    assert sleeps == [input_module.MIN_CHAR_DELAY_MS / 1000] * 3
    sleeps.clear()
    run(inp.type_text("ab", 40))
    assert sleeps == [0.04, 0.04]
