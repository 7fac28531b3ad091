"""A control-socket client written from the Rust ryll's specification alone
(shakenfist/ryll ``docs/control-socket-protocol.md``, protocol 1.2), not from ryll's code: the
independent half of the compatibility test in ``test_control_spec.py``.

Standard library only, blocking. What it implements, in the spec's words:

- Transport: a Unix-domain ``SOCK_STREAM`` socket.
- Framing: NDJSON, "exactly one JSON value encoded as a single line terminated by a ``\\n``";
  the receiver "splits the byte stream on ``\\n`` boundaries and feeds each non-empty line to a
  JSON parser".
- Envelopes: requests ``{"id", "method", "params"}`` ("params ... Never omit the key"); responses
  ``{"id", "ok", "result"|"error"}``; events ``{"event", "data"}`` with no ``id``, which "may
  arrive at any time ... interleaved with responses", so every read collects them.
- ``hello`` first; ``busy`` (a line with no ``id``) on a second connection, retried by
  "a simple back-off loop ... poll every 250 ms".
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable
from typing import Any

Id = int | str
Message = dict[str, Any]

#: Spec, "Concurrency": "A reasonable strategy is to poll every 250 ms".
BUSY_RETRY_S = 0.25


class ProtocolError(AssertionError):
    """The server sent something the specification does not allow."""


class Busy(Exception):  # noqa: N818  (named after the spec's error code)
    """The server answered a new connection with the spec's ``busy`` line."""

    def __init__(self, line: Message) -> None:
        super().__init__(line)
        self.line = line


class Response:
    """One response envelope."""

    def __init__(self, msg: Message) -> None:
        self.msg = msg

    @property
    def id(self) -> Id | None:
        return self.msg.get("id")

    @property
    def ok(self) -> bool:
        return self.msg["ok"] is True

    @property
    def result(self) -> Message:
        if not self.ok:
            raise ProtocolError(f"expected success, got {self.msg}")
        result = self.msg["result"]
        if not isinstance(result, dict):
            raise ProtocolError(f"result is not an object: {self.msg}")
        return result

    @property
    def code(self) -> str:
        if self.ok:
            raise ProtocolError(f"expected an error, got {self.msg}")
        return str(self.msg["error"]["code"])

    @property
    def message(self) -> str:
        return str(self.msg["error"]["message"])

    def __repr__(self) -> str:
        text = json.dumps(self.msg)
        return f"Response({text[:300]}{'...' if len(text) > 300 else ''})"


def check_envelope(msg: Any) -> Message:
    """``msg`` as one of the spec's three envelopes (server side: response or event)."""
    if not isinstance(msg, dict):
        raise ProtocolError(f"a line that is not a JSON object: {msg!r}")
    if "event" in msg:
        if "id" in msg or not isinstance(msg["event"], str) or not isinstance(
            msg.get("data"), dict
        ):
            raise ProtocolError(f"malformed event envelope: {msg}")
        return msg
    ok = msg.get("ok")
    if not isinstance(ok, bool):
        raise ProtocolError(f"a response without a boolean ok: {msg}")
    if ok:
        if "result" not in msg or not isinstance(msg["result"], dict) or "error" in msg:
            raise ProtocolError(f"malformed success response: {msg}")
    else:
        err = msg.get("error")
        if (not isinstance(err, dict) or not isinstance(err.get("code"), str)
                or not isinstance(err.get("message"), str) or "result" in msg):
            raise ProtocolError(f"malformed error response: {msg}")
    if "id" in msg and not isinstance(msg["id"], int | str):
        raise ProtocolError(f"a response id that is neither integer nor string: {msg}")
    return msg


class SpecClient:
    """One connection to the control socket."""

    def __init__(self, path: str, *, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._buf = b""
        self._next_id = 0
        self._responses: dict[Id, Response] = {}
        #: Events read and not yet taken by ``wait_event``, oldest first.
        self.events: list[Message] = []
        #: Every event ever read on this connection, oldest first.
        self.all_events: list[Message] = []
        self.hello_result: Message | None = None
        self.closed_by_server = False

    # -- connection ---------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        path: str,
        *,
        protocol_version: str = "1.2",
        client_name: str = "ctlspec-client",
        busy_timeout: float = 10.0,
        timeout: float = 30.0,
    ) -> SpecClient:
        """Connects and says hello, retrying every 250 ms while the server says ``busy``."""
        deadline = time.monotonic() + busy_timeout
        while True:
            client = cls(path, timeout=timeout)
            try:
                resp = client.hello(protocol_version, client_name)
            except (Busy, BrokenPipeError, ConnectionResetError, EOFError):
                # Busy: the spec's line; the others: the server closed the new connection
                # before (or while) the hello was written.
                client.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(BUSY_RETRY_S)
                continue
            if not resp.ok:
                client.close()
                raise ProtocolError(f"hello refused: {resp}")
            return client

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> SpecClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- wire ---------------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        """One message, as one line (never pretty-printed)."""
        self.send_raw(json.dumps(msg, separators=(",", ":")).encode("utf-8") + b"\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_message(self, timeout: float | None = None) -> Message:
        """The next message (a response or an event), raw. EOFError when the server closed the
        connection; TimeoutError when nothing came in ``timeout`` seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            while b"\n" in self._buf:
                raw, self._buf = self._buf.split(b"\n", 1)
                if raw.strip():
                    return check_envelope(json.loads(raw.decode("utf-8")))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete line from the server")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                raise TimeoutError("no complete line from the server") from None
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed_by_server = True
                if self._buf.strip():
                    raise ProtocolError(f"a partial line before EOF: {self._buf[:200]!r}")
                raise EOFError("the server closed the connection")
            self._buf += data

    def _dispatch(self, msg: Message) -> Response | None:
        """Files an event; returns a response."""
        if "event" in msg:
            self.events.append(msg)
            self.all_events.append(msg)
            return None
        return Response(msg)

    def pump(self, timeout: float) -> None:
        """Reads whatever arrives for ``timeout`` seconds (events are kept; responses filed)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.read_message(left)
            except TimeoutError:
                return
            resp = self._dispatch(msg)
            if resp is not None:
                self._file(resp)

    def _file(self, resp: Response) -> None:
        if resp.id is None:
            if resp.msg.get("error", {}).get("code") == "busy":
                raise Busy(resp.msg)
            raise ProtocolError(f"a response without an id: {resp}")
        self._responses[resp.id] = resp

    # -- requests -----------------------------------------------------------------------------

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def submit(self, method: str, params: Any = None, *, id: Id | None = None) -> Id:  # noqa: A002
        """Sends a request without waiting; returns its id. ``params`` None sends ``{}``."""
        rid: Id = self.new_id() if id is None else id
        self.send({"id": rid, "method": method, "params": {} if params is None else params})
        return rid

    def response(self, rid: Id, timeout: float | None = None) -> Response:
        """The response to request ``rid`` (events read meanwhile are kept). The id must come
        back as the same JSON value and type (the spec: "an opaque token"); a float or another
        type is refused by ``check_envelope``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while rid not in self._responses:
            msg = self.read_message(max(0.0, deadline - time.monotonic()))
            resp = self._dispatch(msg)
            if resp is not None:
                self._file(resp)
        return self._responses.pop(rid)

    def request(
        self,
        method: str,
        params: Any = None,
        *,
        id: Id | None = None,  # noqa: A002
        timeout: float | None = None,
    ) -> Response:
        return self.response(self.submit(method, params, id=id), timeout)

    def call(self, method: str, params: Any = None, **kw: Any) -> Message:
        """A request that must succeed: its ``result``."""
        return self.request(method, params, **kw).result

    def hello(self, protocol_version: str = "1.2",
              client_name: str = "ctlspec-client") -> Response:
        resp = self.request("hello", {"client_name": client_name,
                                      "protocol_version": protocol_version})
        if resp.ok:
            self.hello_result = resp.result
        return resp

    # -- verbs --------------------------------------------------------------------------------

    def status(self) -> Message:
        return self.call("status")

    def send_key(self, scancode: int, state: str = "press") -> Response:
        return self.request("send_key", {"scancode": scancode, "state": state})

    def paste(self, text: str, char_delay_ms: int | None = None, *,
              id: Id | None = None) -> Response:  # noqa: A002
        params: Message = {"text": text}
        if char_delay_ms is not None:
            params["char_delay_ms"] = char_delay_ms
        return self.request("paste", params, id=id)

    def screenshot(self, surface_id: int | None = None, fmt: str | None = None,
                   timeout: float | None = None) -> Response:
        params: Message = {}
        if surface_id is not None:
            params["surface_id"] = surface_id
        if fmt is not None:
            params["format"] = fmt
        return self.request("screenshot", params, timeout=timeout)

    def screenshot_bytes(self, surface_id: int | None = None,
                         fmt: str | None = None) -> tuple[Message, bytes]:
        """A successful screenshot's result and its decoded image bytes."""
        result = self.screenshot(surface_id, fmt).result
        return result, base64.b64decode(result["data_base64"], validate=True)

    def subscribe(self, *events: str) -> list[str]:
        return list(self.call("subscribe", {"events": list(events)})["subscribed"])

    def unsubscribe(self, *events: str) -> list[str]:
        return list(self.call("unsubscribe", {"events": list(events)})["unsubscribed"])

    # -- events -------------------------------------------------------------------------------

    def wait_event(
        self,
        name: str,
        timeout: float = 30.0,
        pred: Callable[[Message], bool] | None = None,
    ) -> Message:
        """Takes the oldest kept event called ``name`` (whose ``data`` satisfies ``pred``),
        reading until one comes; returns its ``data``. TimeoutError if none in ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name and (pred is None or pred(ev["data"])):
                    del self.events[i]
                    return dict(ev["data"])
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name!r} event in {timeout} s")
            resp = self._dispatch(self.read_message(left))
            if resp is not None:
                self._file(resp)

    def take_events(self, name: str | None = None) -> list[Message]:
        """Removes and returns the kept events (all, or those called ``name``)."""
        taken = [ev for ev in self.events if name is None or ev["event"] == name]
        self.events = [ev for ev in self.events if ev not in taken]
        return taken

    def wait_eof(self, timeout: float = 30.0) -> list[Message]:
        """Reads until the server closes the connection; returns what came before EOF."""
        deadline = time.monotonic() + timeout
        seen: list[Message] = []
        while True:
            try:
                msg = self.read_message(max(0.0, deadline - time.monotonic()))
            except EOFError:
                return seen
            seen.append(msg)
            self._dispatch(msg)
