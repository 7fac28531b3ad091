"""The vdagent protocol end to end: ryll against QEMU with the test VM's guest agent
(``guest/agent.c``) on the virtio-serial port com.redhat.spice.0, and against VMs without one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ryll.channels.events import AgentConnected, AgentReady, ClipboardChanged
from ryll.session.session import Session
from ryll.session.target import parse_direct
from ryll.testvm import TestVM
from tests.e2e.conftest import run_doc_example, run_ryll

pytestmark = pytest.mark.e2e

GUEST_TEXT = "hello-from-guest"


@pytest.fixture(scope="module")
def agent_vm():
    with TestVM(vga="qxl", scene="static", mode="640x480", agent_port=True,
                extra_cmdline=f"ryll.agent=1 ryll.clip={GUEST_TEXT}") as vm:
        vm.wait_serial(r"ryll: agent up", timeout=90)
        vm.wait_serial(r"ryll: mode set 640x480", timeout=90)
        yield vm


def test_clipboard_both_ways_through_the_api(agent_vm: TestVM) -> None:
    after = agent_vm.serial_offset()

    async def run() -> tuple[str | None, str | None, list[str]]:
        session = Session(parse_direct(f"127.0.0.1:{agent_vm.port}"))
        seen: list[str] = []
        events = session.events(AgentConnected, AgentReady, ClipboardChanged)

        async def collect() -> None:
            async for event in events:
                seen.append(type(event).__name__)

        collector = asyncio.ensure_future(collect())
        await session.connect()
        waiter = asyncio.ensure_future(session.wait())
        try:
            deadline = time.monotonic() + 30
            while session.agent.guest_clipboard is None:  # fetched when the guest grabs
                assert time.monotonic() < deadline, "the guest's clipboard never arrived"
                await asyncio.sleep(0.1)
            offered = session.agent.guest_clipboard
            fetched = await session.agent.get_clipboard(timeout=10)
            session.agent.set_clipboard("hello-from-ryll")
            await asyncio.to_thread(
                agent_vm.wait_serial, r"ryll: agent clipboard hello-from-ryll", 30, after)
        finally:
            session.stop()
            await waiter
            await collector
        return offered, fetched, seen

    offered, fetched, seen = asyncio.run(run())
    assert offered == GUEST_TEXT
    assert fetched == GUEST_TEXT
    assert seen[:2] == ["AgentConnected", "AgentReady"] and "ClipboardChanged" in seen


def test_resolution_and_summary(agent_vm: TestVM, tmp_path: Path) -> None:
    after = agent_vm.serial_offset()
    run = run_ryll(["--direct", f"127.0.0.1:{agent_vm.port}", "--headless", "--duration", "10",
                    "--resolution", "800x600"], tmp_path)
    assert run.returncode == 0, run.stderr
    agent_vm.wait_serial(r"ryll: agent monitors 800x600", timeout=5, after=after)
    agent_vm.wait_serial(r"ryll: mode set 800x600", timeout=5, after=after)
    s = run.summary
    assert s is not None
    agent = s["agent"]
    assert agent["connected"] is True
    assert {"monitors_config", "clipboard_by_demand", "clipboard_selection"} <= set(agent["caps"])
    assert agent["resolution_requested"] == "800x600" and agent["resolution_sent"] is True
    assert agent["last_reply"] == {"type": "monitors_config", "error": 1}
    assert agent["guest_clipboard"] == GUEST_TEXT
    primary = [x for x in s["surfaces"] if x["primary"]]
    assert [(x["width"], x["height"]) for x in primary] == [(800, 600)]
    assert "ryll: agent: connected" in run.stdout
    assert not [k for k in s["gaps"] if k.startswith("main:agent:")], s["gaps"]


@pytest.mark.parametrize("agent_port", [False, True], ids=["no-port", "port-no-agent"])
def test_without_an_agent_options_degrade(agent_port: bool, tmp_path: Path) -> None:
    with TestVM(vga="qxl", scene=None, agent_port=agent_port) as vm:
        run = run_ryll(["--direct", f"127.0.0.1:{vm.port}", "--headless", "--duration", "3",
                        "--resolution", "800x600"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert "ryll: agent: not connected" in run.stdout
    assert run.stderr.count("no guest agent connected") == 1
    s = run.summary
    assert s is not None
    assert s["agent"]["connected"] is False
    assert s["agent"]["resolution_requested"] == "800x600"
    assert s["agent"]["resolution_sent"] is False
    assert s["end"]["exit_code"] == 0


def test_docs_agent_example_runs_as_written(agent_vm: TestVM, tmp_path: Path) -> None:
    """docs/api.md's guest-agent example (the others run in tests/e2e/test_api.py)."""
    after = agent_vm.serial_offset()
    run = run_doc_example("resolution(", agent_vm.port, tmp_path)
    assert "the guest's clipboard:" in run.stdout
    assert "the guest has the script's text" in run.stdout
    agent_vm.wait_serial(r"ryll: agent clipboard from the script", timeout=10, after=after)
    agent_vm.wait_serial(r"ryll: mode set 800x600", timeout=5, after=0)


def test_api_resolution_waits_for_the_new_display(agent_vm: TestVM) -> None:
    import ryll

    with ryll.connect_sync(f"127.0.0.1:{agent_vm.port}") as vm:
        vm.wait_for_display()
        vm.resolution(720, 400, timeout=30)
        assert [(m.width, m.height) for m in vm.snapshot().monitors] == [(720, 400)]
        assert vm.screenshot().size == (720, 400)
