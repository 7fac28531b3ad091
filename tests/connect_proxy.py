"""An HTTP CONNECT proxy for tests (RFC 9110 9.3.6), on its own threads: it records each
request, can demand Basic credentials (407 without them), refuses ports it is told to, and
relays bytes both ways. Tests point ryll's .vv ``proxy=`` at it."""

from __future__ import annotations

import base64
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class ConnectRequest:
    target: str
    authorization: str | None


@dataclass
class ConnectProxy:
    user: str | None = None
    password: str | None = None
    refuse_ports: set[int] = field(default_factory=set)
    requests: list[ConnectRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        for s in self._socks:
            s.close()

    def __enter__(self) -> ConnectProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._socks.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(1)
            if not chunk:
                conn.close()
                return
            head += chunk
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        auth = headers.get("proxy-authorization")
        self.requests.append(ConnectRequest(target, auth))
        if method != "CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            conn.close()
            return
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if auth != f"Basic {token}":
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic realm=\"test\"\r\n\r\n")
                conn.close()
                return
        host, _, port = target.rpartition(":")
        if int(port) in self.refuse_ports:
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            conn.close()
            return
        try:
            up = socket.create_connection((host.strip("[]"), int(port)))
        except OSError:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            conn.close()
            return
        self._socks.append(up)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()
        self._pump(conn, up)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Forwarder:
    """Listens on ``host`` (e.g. the IPv6 loopback) and relays every connection to
    127.0.0.1:``upstream_port``: a server reachable at an address QEMU does not listen on."""

    def __init__(self, host: str, upstream_port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, 0), family=family)
        self.port = int(self._listener.getsockname()[1])
        self.upstream_port = upstream_port
        self.connections = 0
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        for s in self._socks:
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._socks += [conn, up]
            threading.Thread(target=ConnectProxy._pump, args=(up, conn), daemon=True).start()
            threading.Thread(target=ConnectProxy._pump, args=(conn, up), daemon=True).start()
