"""Opening one channel connection: TCP or TLS, then the link phase. The asyncio edge around
``ryll.protocol.link``; everything it learns is returned in ``LinkedChannel``.

TLS follows spice-gtk (``spice_channel_coroutine`` / ``verify_subject``): the certificate chain
is verified against the given CA (or the system store); with a ``host-subject`` the peer's
subject must equal it and the host name is not checked, otherwise the host name is.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from ryll.errors import ConnectError, ProtocolError, RyllError, ServerClosedError, TLSError
from ryll.protocol import link
from ryll.protocol.constants import LINK_HEADER_SIZE, CommonCap
from ryll.protocol.names import channel_name
from ryll.session.target import Proxy, Target

log = logging.getLogger("ryll.session")

CONNECT_TIMEOUT_S = 10.0
# The link phase is four small messages; a server that has not answered in this long is not
# going to (spice-gtk has no timeout at all, which is how clients hang on half-open proxies).
LINK_TIMEOUT_S = 15.0

COMMON_CAPS = (CommonCap.PROTOCOL_AUTH_SELECTION, CommonCap.AUTH_SPICE, CommonCap.MINI_HEADER)


# Told each step of a link as it crosses the wire (session.traffic): ("open", b"") once the
# stream is up, then ("out", bytes written) and ("in", bytes read). The ticket is shown as
# zeros of its length: what a recording keeps must never hold it.
LinkObserver = Callable[[str, bytes], None]


def _ignore(kind: str, data: bytes) -> None:
    pass


@dataclass
class LinkedChannel:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reply: link.LinkReply
    mini_header: bool
    tls: bool


# Subject attributes RFC 4514 has no short name for (cryptography prints their dotted OID), by
# the names OpenSSL's X509_NAME_add_entry_by_txt takes, which spice-gtk's host-subject uses.
# Keyed by dotted OID (cryptography's NameOID values) so that cryptography.x509, 1.4 MiB, is
# loaded by the first TLS link that checks a subject, not by every session.
_OID_NAMES = {
    "1.2.840.113549.1.9.1": "EMAILADDRESS",
    "2.5.4.5": "SERIALNUMBER",
    "2.5.4.4": "SN",
    "2.5.4.42": "GN",
    "2.5.4.12": "TITLE",
}
# Other spellings users write for the same attributes.
_KEY_ALIASES = {"E": "EMAILADDRESS", "EMAIL": "EMAILADDRESS", "SURNAME": "SN",
                "GIVENNAME": "GN"}


def parse_subject(text: str) -> list[tuple[str, str]]:
    """virt-viewer's host-subject: ``C=IL,L=Raanana,O=Red Hat,CN=my server``; a comma inside a
    value is escaped as ``\\,`` (spice-gtk ``subject_to_x509_name``)."""
    pairs: list[tuple[str, str]] = []
    item, escaped = "", False
    for ch in text + ",":
        if escaped:
            item += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            if item.strip():
                key, sep, value = item.partition("=")
                if not sep:
                    raise TLSError(f"host-subject {text!r}: {item!r} is not KEY=VALUE")
                name = key.strip().upper()
                pairs.append((_KEY_ALIASES.get(name, name), value.strip()))
            item = ""
        else:
            item += ch
    return pairs


def _cert_subject(der: bytes) -> list[tuple[str, str]]:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    out = []
    for attr in cert.subject:
        name = _OID_NAMES.get(attr.oid.dotted_string, attr.rfc4514_attribute_name.upper())
        value = attr.value if isinstance(attr.value, str) else attr.value.decode("utf-8", "replace")
        out.append((name, value))
    return out


def make_ssl_context(target: Target) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=target.ca_pem) if target.ca_pem else (
        ssl.create_default_context()
    )
    # SPICE servers present self-made certificates whose names are checked through the
    # host-subject when one is given (spice-gtk does the same).
    ctx.check_hostname = target.host_subject is None
    return ctx


def check_subject(sslobj: ssl.SSLObject | ssl.SSLSocket | None, expected: str) -> None:
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    if not der:
        raise TLSError("TLS: the server presented no certificate")
    want = sorted(parse_subject(expected))
    got = sorted(_cert_subject(der))
    if want != got:
        shown = ",".join(f"{k}={v}" for k, v in _cert_subject(der))
        raise TLSError(f"TLS: server certificate subject {shown!r} does not match host-subject")


# A proxy's answer to CONNECT is a status line and a few headers; more is not a proxy.
MAX_PROXY_REPLY_BYTES = 16 * 1024


async def _connect_via_proxy(
    proxy: Proxy, host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP stream to ``host:port`` through an HTTP proxy's CONNECT tunnel (RFC 9110 9.3.6;
    spice-gtk does the same through GIO's HTTP proxy)."""
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port, limit=1 << 20)
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if proxy.user is not None:
        token = base64.b64encode(f"{proxy.user}:{proxy.password or ''}".encode()).decode()
        request += f"Proxy-Authorization: Basic {token}\r\n"
    writer.write((request + "\r\n").encode("utf-8"))
    try:
        await writer.drain()
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await reader.read(1)  # bytes past the head stay in the reader
            if not chunk:
                raise ConnectError(f"the proxy {proxy.describe()} closed the connection "
                                   "instead of answering CONNECT")
            head += chunk
            if len(head) > MAX_PROXY_REPLY_BYTES:
                raise ConnectError(f"the proxy {proxy.describe()} sent an oversized reply "
                                   "to CONNECT")
    except (ConnectionError, OSError) as exc:
        writer.close()
        raise ConnectError(f"the proxy {proxy.describe()} failed: {exc}") from None
    except ConnectError:
        writer.close()
        raise
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].startswith("2"):
        writer.close()
        raise ConnectError(f"the proxy {proxy.describe()} refused CONNECT {authority}: "
                           f"{status[:200]!r}")
    return reader, writer


async def _open(
    target: Target, port: int, ssl_ctx: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    server_hostname = target.host if ssl_ctx is not None else None
    if target.proxy is None:
        return await asyncio.open_connection(
            target.host, port, ssl=ssl_ctx, server_hostname=server_hostname, limit=1 << 20)
    reader, writer = await _connect_via_proxy(target.proxy, target.host, port)
    if ssl_ctx is not None:
        try:
            await writer.start_tls(ssl_ctx, server_hostname=server_hostname)
        except BaseException:
            writer.close()
            raise
    return reader, writer


async def open_stream(
    target: Target, tls: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = target.tls_port if tls else target.port
    if port is None:
        raise ConnectError(f"no {'TLS ' if tls else ''}port known for {target.host}")
    ssl_ctx = make_ssl_context(target) if tls else None
    where = f"{target.host}:{port}"
    if target.proxy is not None:
        where += f" through the proxy {target.proxy.describe()}"
    try:
        reader, writer = await asyncio.wait_for(_open(target, port, ssl_ctx), CONNECT_TIMEOUT_S)
    except ssl.SSLCertVerificationError as exc:
        raise TLSError(f"TLS verification of {where} failed: {exc.verify_message}") from None
    except ssl.SSLError as exc:
        raise TLSError(f"TLS handshake with {where} failed: {exc.reason or exc}") from None
    except TimeoutError:
        raise ConnectError(f"cannot connect to {where}: timed out") from None
    except socket.gaierror as exc:
        raise ConnectError(f"cannot connect to {where}: {exc.strerror}") from None
    except OSError as exc:
        raise ConnectError(f"cannot connect to {where}: {exc.strerror or exc}") from None
    if tls and target.host_subject is not None:
        try:
            check_subject(writer.get_extra_info("ssl_object"), target.host_subject)
        except TLSError:
            writer.close()
            raise
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Small control messages (PONG, ACK) must not wait for Nagle.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def _read(reader: asyncio.StreamReader, n: int, what: str) -> bytes:
    try:
        return await reader.readexactly(n)
    except asyncio.IncompleteReadError as exc:
        raise ServerClosedError(
            f"server closed the connection during the link phase ({what}, "
            f"{len(exc.partial)} of {n} bytes)"
        ) from None
    except ssl.SSLError as exc:
        raise TLSError(f"TLS failed during the link phase: {exc.reason or exc}") from None
    except ConnectionError as exc:
        raise ServerClosedError(f"connection reset during the link phase ({what}): {exc}") from None


async def link_channel(
    target: Target,
    tls: bool,
    connection_id: int,
    channel_type: int,
    channel_id: int,
    channel_caps: tuple[int, ...],
    observe: LinkObserver | None = None,
) -> LinkedChannel:
    """Connect and link one channel; raises a RyllError subclass a user can act on."""
    reader, writer = await open_stream(target, tls)
    observe = observe or _ignore
    try:
        observe("open", b"")
        return await asyncio.wait_for(
            _link(reader, writer, target, tls, connection_id, channel_type, channel_id,
                  channel_caps, observe),
            LINK_TIMEOUT_S,
        )
    except TimeoutError:
        writer.close()
        raise ProtocolError(
            f"the server did not complete the link of the {channel_name(channel_type)} channel "
            f"within {LINK_TIMEOUT_S:.0f} s"
        ) from None
    except RyllError:
        writer.close()
        raise
    except (ConnectionError, OSError) as exc:
        writer.close()
        raise ServerClosedError(
            f"connection lost during the link of the {channel_name(channel_type)} channel: "
            f"{exc}") from None
    except Exception as exc:  # a server reply ryll mishandles: a clean error, and the bug logged
        writer.close()
        log.error("link of the %s channel failed", channel_name(channel_type), exc_info=exc)
        raise ProtocolError(
            f"the link of the {channel_name(channel_type)} channel failed: "
            f"{type(exc).__name__}: {exc}") from None


async def _link(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    target: Target,
    tls: bool,
    connection_id: int,
    channel_type: int,
    channel_id: int,
    channel_caps: tuple[int, ...],
    observe: LinkObserver,
) -> LinkedChannel:
    message = link.build_link_message(connection_id, channel_type, channel_id, COMMON_CAPS,
                                      channel_caps)
    writer.write(message)
    observe("out", message)
    header = await _read(reader, LINK_HEADER_SIZE, "link header")
    size = link.parse_link_header(header)
    body = await _read(reader, size, "link reply")
    observe("in", header + body)
    reply = link.parse_link_reply(body)
    link.check_link_result(reply.error, channel_type, channel_id)
    mechanism = link.choose_auth_mechanism(reply)
    if mechanism is not None:
        writer.write(mechanism)
        observe("out", mechanism)
    ticket = link.encrypt_ticket(reply.pub_key, target.password or "")
    writer.write(ticket)
    observe("out", bytes(len(ticket)))
    await writer.drain()
    raw_result = await _read(reader, 4, "link result")
    observe("in", raw_result)
    result = link.parse_link_result(raw_result)
    link.check_link_result(result, channel_type, channel_id)
    mini = reply.has_common(CommonCap.MINI_HEADER)
    log.debug(
        "linked %s channel %d (%s, %s header)", channel_name(channel_type), channel_id,
        "tls" if tls else "plain", "mini" if mini else "full",
    )
    return LinkedChannel(reader, writer, reply, mini, tls)
