"""A minimal synchronous QMP (QEMU Machine Protocol) client over a unix socket.

QMP is JSON, one object a line: a greeting, then ``{"execute": ..., "arguments": ...}`` commands
answered by ``{"return": ...}`` or ``{"error": {"class": ..., "desc": ...}}``, with asynchronous
``{"event": ...}`` lines in between (kept in ``events``).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ryll.testvm.errors import TestVMError
from ryll.testvm.images import read_ppm


class QMPError(TestVMError):
    """QEMU answered a command with an error."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"QMP {command}: {error_class}: {desc}")
        self.command = command
        self.error_class = error_class
        self.desc = desc


class QMPClient:
    """Synchronous QMP client. Thread-safe: one command at a time."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self.greeting: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self._sock: socket.socket | None = None
        self._buf = b""
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # -- connection ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self, wait: float = 10.0) -> QMPClient:
        """Connects (retrying for up to ``wait`` seconds while the socket is not there yet), reads
        the greeting and negotiates capabilities."""
        with self._lock:
            if self._sock is not None:
                return self
            deadline = time.monotonic() + wait
            while True:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(self.path)
                    break
                except (FileNotFoundError, ConnectionRefusedError) as exc:
                    sock.close()
                    if time.monotonic() >= deadline:
                        raise TestVMError(f"cannot connect to QMP at {self.path}: {exc}") from exc
                    time.sleep(0.05)
            self._sock = sock
            self._buf = b""
            try:
                greeting = self._read_message()
                # QEMU 7.2 queues events (SPICE_CONNECTED/DISCONNECTED...) on a QMP socket that
                # nobody has opened yet and may flush them ahead of the greeting: skip them.
                while "event" in greeting and "QMP" not in greeting:
                    self.events.append(greeting)
                    greeting = self._read_message()
                if "QMP" not in greeting:
                    raise TestVMError(f"unexpected QMP greeting: {greeting!r}")
                self.greeting = greeting
                self.execute("qmp_capabilities")
            except BaseException:
                self.close()
                raise
            return self

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.close()
                finally:
                    self._sock = None
                    self._buf = b""

    def __enter__(self) -> QMPClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands -----------------------------------------------------------------------------

    def execute(
        self, command: str, arguments: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> Any:
        """Runs ``command`` and returns its ``return`` value; raises QMPError on ``error``.

        Arguments come from the ``arguments`` mapping (for names with dashes, e.g.
        ``{"command-line": ...}``) and from keyword arguments, merged.
        """
        args = dict(arguments or {})
        args.update(kwargs)
        with self._lock:
            if self._sock is None:
                raise TestVMError("QMP client is not connected")
            ident = f"ryll-{next(self._ids)}"
            msg: dict[str, Any] = {"execute": command, "id": ident}
            if args:
                msg["arguments"] = args
            try:
                self._sock.sendall(json.dumps(msg).encode() + b"\n")
            except OSError as exc:
                self.close()
                raise TestVMError(f"QMP {command}: connection lost: {exc}") from exc
            while True:
                reply = self._read_message()
                if "event" in reply:
                    self.events.append(reply)
                    continue
                if reply.get("id") not in (ident, None):
                    continue  # an answer to something else (should not happen)
                if "error" in reply:
                    err = reply["error"]
                    raise QMPError(command, str(err.get("class")), str(err.get("desc")))
                if "return" in reply:
                    return reply["return"]

    def screendump(
        self, path: str | Path, *, device: str | None = None, head: int | None = None
    ) -> None:
        """Has QEMU write the guest display as a binary PPM to ``path`` (made absolute)."""
        args: dict[str, Any] = {"filename": os.path.abspath(path)}
        if device is not None:
            args["device"] = device
        if head is not None:
            args["head"] = head
        self.execute("screendump", args)

    def screendump_array(
        self,
        *,
        device: str | None = None,
        head: int | None = None,
        tmpdir: str | Path | None = None,
    ) -> np.ndarray:
        """The guest display as an (H, W, 3) uint8 RGB array."""
        fd, tmp = tempfile.mkstemp(suffix=".ppm", prefix="ryll-screendump-", dir=tmpdir)
        os.close(fd)
        try:
            self.screendump(tmp, device=device, head=head)
            return read_ppm(tmp)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def system_reset(self) -> None:
        self.execute("system_reset")

    def hmp(self, command_line: str) -> str:
        """Runs a human-monitor command (e.g. "info spice") and returns its text output."""
        out = self.execute("human-monitor-command", {"command-line": command_line})
        return str(out)

    def query_status(self) -> dict[str, Any]:
        return dict(self.execute("query-status"))

    # -- wire ---------------------------------------------------------------------------------

    def _read_message(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as exc:
                raise TestVMError(f"QMP: no answer within {self.timeout} s") from exc
            except OSError as exc:
                self.close()
                raise TestVMError(f"QMP: connection lost: {exc}") from exc
            if not chunk:
                self.close()
                raise TestVMError("QMP: QEMU closed the connection")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            msg = json.loads(line)
        except ValueError as exc:
            raise TestVMError(f"QMP: bad JSON line {line[:200]!r}") from exc
        if not isinstance(msg, dict):
            raise TestVMError(f"QMP: unexpected message {msg!r}")
        return msg
