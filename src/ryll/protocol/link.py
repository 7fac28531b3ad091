"""The link phase: SpiceLinkHeader/SpiceLinkMess out, SpiceLinkReply in, auth mechanism, ticket,
link result. Pure functions on bytes; ``session.connection`` does the I/O.

Order (spice-gtk ``spice_channel_send_link`` / ``spice_channel_recv_link_msg``, spice-server
``reds_handle_read_link_done``): client sends header + mess + caps; server answers header + reply
(+ caps), whose ``error`` may already refuse us (NEED_SECURED, VERSION_MISMATCH...); if the server
set PROTOCOL_AUTH_SELECTION the client sends the u32 mechanism; then the 128-byte RSA-OAEP ticket;
the server answers a u32 link result.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ryll.errors import AuthError, LinkError, ProtocolError, UsageError
from ryll.protocol.constants import (
    LINK_HEADER_SIZE,
    LINK_MAGIC,
    LINK_MESS_SIZE,
    LINK_REPLY_SIZE,
    MAX_PASSWORD_LENGTH,
    TICKET_PUBKEY_BYTES,
    VERSION_MAJOR,
    VERSION_MINOR,
    AuthMechanism,
    CommonCap,
    LinkResult,
)
from ryll.protocol.names import channel_name
from ryll.protocol.reader import Reader

_HEADER = struct.Struct("<IIII")
_MESS = struct.Struct("<IBBIII")

# A link reply is 178 bytes plus capability words. spice-server sends at most a handful of words;
# 4 KiB (over 900 words) is far beyond any real server and keeps a hostile size from being read.
MAX_LINK_REPLY_SIZE = 4096
# Capability word counts we accept in a reply, for the same reason.
MAX_CAP_WORDS = 64


def caps_to_words(caps: Iterable[int]) -> list[int]:
    """Cap N is bit N % 32 of word N // 32 (spice-common ``spice_channel_set_caps``)."""
    words: list[int] = []
    for cap in caps:
        idx = cap // 32
        while len(words) <= idx:
            words.append(0)
        words[idx] |= 1 << (cap % 32)
    return words


def has_cap(words: list[int] | tuple[int, ...], cap: int) -> bool:
    idx = cap // 32
    return idx < len(words) and bool(words[idx] & (1 << (cap % 32)))


def words_to_caps(words: Iterable[int]) -> list[int]:
    return [i * 32 + b for i, w in enumerate(words) for b in range(32) if w & (1 << b)]


def build_link_message(
    connection_id: int,
    channel_type: int,
    channel_id: int,
    common_caps: Iterable[int],
    channel_caps: Iterable[int],
) -> bytes:
    """SpiceLinkHeader + SpiceLinkMess + cap words, ready to send."""
    common = caps_to_words(common_caps)
    chan = caps_to_words(channel_caps)
    caps = struct.pack(f"<{len(common) + len(chan)}I", *common, *chan)
    mess = _MESS.pack(
        connection_id, channel_type, channel_id, len(common), len(chan), LINK_MESS_SIZE
    )
    body = mess + caps
    return _HEADER.pack(LINK_MAGIC, VERSION_MAJOR, VERSION_MINOR, len(body)) + body


def parse_link_header(data: bytes) -> int:
    """Check the server's SpiceLinkHeader; return the size of the reply that follows."""
    if len(data) != LINK_HEADER_SIZE:
        raise ProtocolError(f"link header is {len(data)} bytes, expected {LINK_HEADER_SIZE}")
    magic, major, minor, size = _HEADER.unpack(data)
    if magic != LINK_MAGIC:
        raise ProtocolError(f"not a SPICE server: link magic {magic:#010x}, expected 'REDQ'")
    if major != VERSION_MAJOR:
        raise LinkError(
            f"server speaks SPICE protocol {major}.{minor}; ryll speaks {VERSION_MAJOR}.x",
            LinkResult.VERSION_MISMATCH,
        )
    if not 4 <= size <= MAX_LINK_REPLY_SIZE:
        raise ProtocolError(f"link reply size {size} outside 4..{MAX_LINK_REPLY_SIZE}")
    return int(size)


@dataclass(frozen=True, slots=True)
class LinkReply:
    """SpiceLinkReply: the server's key and capabilities."""

    error: int
    pub_key: bytes
    common_caps: tuple[int, ...]
    channel_caps: tuple[int, ...]

    def has_common(self, cap: int) -> bool:
        return has_cap(self.common_caps, cap)

    def has_channel(self, cap: int) -> bool:
        return has_cap(self.channel_caps, cap)


def parse_link_reply(body: bytes) -> LinkReply:
    """Parse SpiceLinkReply. A non-OK ``error`` is returned, not raised, since the reply may be
    the short 4-byte form spice-server uses for errors; call ``check_link_result`` on it."""
    r = Reader(body, what="link reply")
    error = r.u32()
    if error != LinkResult.OK:
        return LinkReply(error, b"", (), ())
    if len(body) < LINK_REPLY_SIZE:
        raise ProtocolError(f"link reply is {len(body)} bytes, expected at least {LINK_REPLY_SIZE}")
    pub_key = r.bytes(TICKET_PUBKEY_BYTES, "pub_key")
    n_common = r.u32()
    n_channel = r.u32()
    caps_offset = r.u32()
    if n_common + n_channel > MAX_CAP_WORDS:
        raise ProtocolError(f"link reply claims {n_common}+{n_channel} capability words")
    caps = r.at(caps_offset, "caps_offset") if caps_offset != r.pos else r
    caps.count(n_common + n_channel, 4, "capability words")
    common = tuple(caps.u32() for _ in range(n_common))
    channel = tuple(caps.u32() for _ in range(n_channel))
    return LinkReply(error, pub_key, common, channel)


def check_link_result(code: int, channel_type: int, channel_id: int = 0) -> None:
    """Turn a link error code into the exception a user can act on."""
    if code == LinkResult.OK:
        return
    name = f"{channel_name(channel_type)} channel {channel_id}"
    try:
        result = LinkResult(code)
    except ValueError:
        raise LinkError(f"server refused the {name} with unknown link error {code}", code) from None
    if result == LinkResult.PERMISSION_DENIED:
        raise AuthError("authentication failed: the server refused the password", code)
    if result == LinkResult.NEED_SECURED:
        raise NeedSecured(f"the server requires TLS for the {name}", code)
    if result == LinkResult.NEED_UNSECURED:
        raise LinkError(f"the server requires a plain (non-TLS) connection for the {name}", code)
    if result == LinkResult.CHANNEL_NOT_AVAILABLE:
        raise LinkError(f"the server refused the {name}: channel not available", code)
    if result == LinkResult.VERSION_MISMATCH:
        raise LinkError(f"protocol version mismatch on the {name}", code)
    if result == LinkResult.BAD_CONNECTION_ID:
        raise LinkError(f"the server does not know our session id (linking the {name})", code)
    raise LinkError(f"server refused the {name}: {result.name.lower()}", code)


class NeedSecured(LinkError):
    """SPICE_LINK_ERR_NEED_SECURED: reconnect this channel on the TLS port."""


def choose_auth_mechanism(reply: LinkReply) -> bytes | None:
    """The u32 to send after the reply, or None when the server does not do auth selection.

    ryll speaks SPICE ticket auth only; a server that offers only SASL is refused clearly.
    """
    if not reply.has_common(CommonCap.PROTOCOL_AUTH_SELECTION):
        return None
    if not reply.has_common(CommonCap.AUTH_SPICE):
        raise LinkError(
            "the server offers only SASL authentication, which ryll does not support",
            LinkResult.ERROR,
        )
    return struct.pack("<I", AuthMechanism.SPICE)


def encrypt_ticket(pub_key_der: bytes, password: str) -> bytes:
    """RSA-OAEP(SHA-1, MGF1-SHA-1) of password + NUL, as spice-gtk ``spice_channel_send_spice_
    ticket``. Even with ticketing disabled the server decrypts the ticket, so the empty password
    must be encrypted too."""
    secret = password.encode("utf-8")
    if len(secret) > MAX_PASSWORD_LENGTH:
        raise UsageError(f"password is longer than SPICE's {MAX_PASSWORD_LENGTH}-byte limit")
    try:
        key = load_der_public_key(pub_key_der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ProtocolError(f"server sent an unreadable ticket public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ProtocolError("server ticket key is not an RSA key")
    # RSA-OAEP with SHA-1 carries at most key bytes - 42 bytes of message.
    room = key.key_size // 8 - 2 * hashes.SHA1.digest_size - 2
    if len(secret) + 1 > room:
        raise ProtocolError(
            f"the server's {key.key_size}-bit ticket key cannot carry a {len(secret)}-byte "
            f"password (at most {max(room - 1, 0)} bytes)")
    try:
        return key.encrypt(
            secret + b"\0",
            padding.OAEP(
                mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None
            ),
        )
    except ValueError as exc:  # any other refusal of the key by the crypto library
        raise ProtocolError(f"cannot encrypt the ticket with the server's key: {exc}") from None


def parse_link_result(data: bytes) -> int:
    if len(data) != 4:
        raise ProtocolError(f"link result is {len(data)} bytes, expected 4")
    return int(struct.unpack("<I", data)[0])
