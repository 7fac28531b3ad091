"""The link phase on the bytes a real spice-server 0.15.1 sent, and mutations of them."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from tests.fixtures.loader import fixture_bytes

from ryll.errors import AuthError, LinkError, ProtocolError, UsageError
from ryll.protocol import link
from ryll.protocol.constants import (
    LINK_HEADER_SIZE,
    LINK_MAGIC,
    LINK_MESS_SIZE,
    LINK_REPLY_SIZE,
    TICKET_ENCRYPTED_BYTES,
    TICKET_PUBKEY_BYTES,
    ChannelType,
    CommonCap,
    DisplayCap,
    LinkResult,
    MainCap,
)

RAW = fixture_bytes("link-reply-main.bin")
HEADER, REPLY = RAW[:LINK_HEADER_SIZE], RAW[LINK_HEADER_SIZE:]
DENIED = fixture_bytes("link-result-denied.bin")

# SpiceLinkReply offsets (protocol.h): error u32 @0, pub_key[162] @4, num_common_caps @166,
# num_channel_caps @170, caps_offset @174, cap words from @178.
N_COMMON_AT, N_CHANNEL_AT, CAPS_OFFSET_AT = 166, 170, 174


def mutate(data: bytes, offset: int, value: int) -> bytes:
    raw = bytearray(data)
    struct.pack_into("<I", raw, offset, value)
    return bytes(raw)


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def test_fixture_shape() -> None:
    assert len(RAW) == 202
    assert len(DENIED) == 4


def test_parse_link_header_on_real_bytes() -> None:
    assert link.parse_link_header(HEADER) == len(REPLY) == 186


def test_parse_link_reply_on_real_bytes() -> None:
    reply = link.parse_link_reply(REPLY)
    assert reply.error == LinkResult.OK
    assert len(reply.pub_key) == TICKET_PUBKEY_BYTES == 162
    assert reply.common_caps == (0x0B,)
    assert reply.channel_caps == (0x0F,)
    for cap in (CommonCap.MINI_HEADER, CommonCap.PROTOCOL_AUTH_SELECTION, CommonCap.AUTH_SPICE):
        assert reply.has_common(cap)
    assert not reply.has_common(CommonCap.AUTH_SASL)
    assert reply.has_channel(MainCap.NAME_AND_UUID)
    assert reply.has_channel(MainCap.SEAMLESS_MIGRATE)
    assert not reply.has_channel(40)  # beyond the words sent


def test_real_pub_key_loads_as_rsa_1024() -> None:
    reply = link.parse_link_reply(REPLY)
    key = serialization.load_der_public_key(reply.pub_key)
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 1024


def test_encrypt_ticket_with_the_real_key_is_128_bytes() -> None:
    reply = link.parse_link_reply(REPLY)
    a = link.encrypt_ticket(reply.pub_key, "")
    b = link.encrypt_ticket(reply.pub_key, "")
    assert len(a) == len(b) == TICKET_ENCRYPTED_BYTES == 128
    assert a != b  # OAEP is randomised: a real encryption, not a fixed pattern
    assert a != bytes(128)


def _der(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _decrypt(private_key: rsa.RSAPrivateKey, ticket: bytes) -> bytes:
    return private_key.decrypt(
        ticket,
        padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None
        ),
    )


@pytest.mark.parametrize(
    ("password", "plain"),
    [("password", b"password\0"), ("", b"\0"), ("x" * 60, b"x" * 60 + b"\0"),
     ("h\u00e9", "h\u00e9".encode() + b"\0")],
)
def test_encrypt_ticket_decrypts_to_password_nul(
    private_key: rsa.RSAPrivateKey, password: str, plain: bytes
) -> None:
    der = _der(private_key)
    assert len(der) == TICKET_PUBKEY_BYTES
    ticket = link.encrypt_ticket(der, password)
    assert len(ticket) == 128
    assert _decrypt(private_key, ticket) == plain


@pytest.mark.parametrize("password", ["x" * 61, "\u00e9" * 31])  # 61 and 62 UTF-8 bytes
def test_password_over_60_bytes_is_a_usage_error(
    private_key: rsa.RSAPrivateKey, password: str
) -> None:
    with pytest.raises(UsageError, match="60"):
        link.encrypt_ticket(_der(private_key), password)


def test_unreadable_key_is_a_protocol_error() -> None:
    reply = link.parse_link_reply(REPLY)
    with pytest.raises(ProtocolError, match="unreadable ticket public key"):
        link.encrypt_ticket(reply.pub_key[:100], "")


def test_non_rsa_key_is_a_protocol_error() -> None:
    der = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ProtocolError, match="not an RSA key"):
        link.encrypt_ticket(der, "")


# --- link header errors -------------------------------------------------------------------


def test_bad_magic() -> None:
    with pytest.raises(ProtocolError, match="not a SPICE server"):
        link.parse_link_header(b"HTTP" + HEADER[4:])


def test_wrong_major() -> None:
    with pytest.raises(LinkError) as info:
        link.parse_link_header(mutate(HEADER, 4, 1))
    assert info.value.code == LinkResult.VERSION_MISMATCH
    assert not isinstance(info.value, ProtocolError)
    assert "1.2" in str(info.value)


def test_other_minor_is_accepted() -> None:
    assert link.parse_link_header(mutate(HEADER, 8, 1)) == 186


@pytest.mark.parametrize("size", [0, 3, link.MAX_LINK_REPLY_SIZE + 1, 0xFFFF_FFFF])
def test_absurd_reply_size(size: int) -> None:
    with pytest.raises(ProtocolError, match="link reply size"):
        link.parse_link_header(mutate(HEADER, 12, size))


@pytest.mark.parametrize("n", [0, 15, 17])
def test_header_of_wrong_length(n: int) -> None:
    with pytest.raises(ProtocolError, match="link header is"):
        link.parse_link_header(RAW[:n])


# --- link reply errors --------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 3, 100, LINK_REPLY_SIZE - 1])
def test_truncated_reply(n: int) -> None:
    with pytest.raises(ProtocolError):
        link.parse_link_reply(REPLY[:n])


def test_reply_without_its_cap_words() -> None:
    with pytest.raises(ProtocolError, match="capability words"):
        link.parse_link_reply(REPLY[:LINK_REPLY_SIZE])


@pytest.mark.parametrize(("common", "channel"), [(1000, 0), (0, 65), (33, 32), (2**31, 2**31)])
def test_too_many_cap_words(common: int, channel: int) -> None:
    body = mutate(mutate(REPLY, N_COMMON_AT, common), N_CHANNEL_AT, channel)
    with pytest.raises(ProtocolError, match="capability words"):
        link.parse_link_reply(body)


def test_more_cap_words_than_the_limit_even_when_present() -> None:
    # 70 real words (all present in the body, well under the 4 KiB reply limit) are refused.
    n = link.MAX_CAP_WORDS + 6
    body = mutate(REPLY[:LINK_REPLY_SIZE], N_COMMON_AT, n) + struct.pack(f"<{n}I", *[0x0B] * n)
    body = mutate(body, N_CHANNEL_AT, 0)
    assert len(body) < link.MAX_LINK_REPLY_SIZE
    with pytest.raises(ProtocolError, match=f"claims {n}\\+0 capability words"):
        link.parse_link_reply(body)


@pytest.mark.parametrize("offset", [0, len(REPLY) + 1, 0xFFFF_FFFF])
def test_bad_caps_offset(offset: int) -> None:
    with pytest.raises(ProtocolError, match="caps_offset"):
        link.parse_link_reply(mutate(REPLY, CAPS_OFFSET_AT, offset))


def test_caps_offset_pointing_elsewhere_is_followed() -> None:
    # Move the two cap words 4 bytes further and point caps_offset at them.
    body = REPLY[:LINK_REPLY_SIZE] + b"\0\0\0\0" + REPLY[LINK_REPLY_SIZE:]
    reply = link.parse_link_reply(mutate(body, CAPS_OFFSET_AT, LINK_REPLY_SIZE + 4))
    assert (reply.common_caps, reply.channel_caps) == ((0x0B,), (0x0F,))


def test_short_error_reply_is_returned_not_raised() -> None:
    # spice-server answers a refused link with just the u32 error.
    reply = link.parse_link_reply(struct.pack("<I", LinkResult.NEED_SECURED))
    assert reply.error == LinkResult.NEED_SECURED
    assert reply.pub_key == b""
    with pytest.raises(link.NeedSecured):
        link.check_link_result(reply.error, ChannelType.MAIN)


# --- link result --------------------------------------------------------------------------


def test_parse_link_result_on_denied_fixture() -> None:
    assert link.parse_link_result(DENIED) == LinkResult.PERMISSION_DENIED


@pytest.mark.parametrize("data", [b"", DENIED[:3], DENIED + b"\0"])
def test_parse_link_result_wrong_size(data: bytes) -> None:
    with pytest.raises(ProtocolError, match="link result is"):
        link.parse_link_result(data)


def test_ok_result_passes() -> None:
    assert link.check_link_result(LinkResult.OK, ChannelType.MAIN) is None


def test_permission_denied_is_auth_error_exit_4() -> None:
    code = link.parse_link_result(DENIED)
    with pytest.raises(AuthError) as info:
        link.check_link_result(code, ChannelType.MAIN)
    assert info.value.exit_code == 4
    assert info.value.code == 7
    assert isinstance(info.value, LinkError)
    assert "password" in str(info.value)


def test_need_secured() -> None:
    with pytest.raises(link.NeedSecured) as info:
        link.check_link_result(LinkResult.NEED_SECURED, ChannelType.DISPLAY, 0)
    assert info.value.code == 5
    assert "TLS" in str(info.value)
    assert "display channel 0" in str(info.value)


def test_channel_not_available_exit_9() -> None:
    with pytest.raises(LinkError) as info:
        link.check_link_result(LinkResult.CHANNEL_NOT_AVAILABLE, ChannelType.INPUTS, 0)
    assert not isinstance(info.value, AuthError | link.NeedSecured)
    assert info.value.exit_code == 9
    assert info.value.code == 9
    assert "inputs channel 0" in str(info.value)
    assert "not available" in str(info.value)


@pytest.mark.parametrize("code", [c for c in LinkResult if c != LinkResult.OK])
def test_every_error_code_raises_with_its_code(code: LinkResult) -> None:
    with pytest.raises(LinkError) as info:
        link.check_link_result(code, ChannelType.CURSOR, 0)
    assert info.value.code == code
    assert str(info.value)


def test_unknown_result_code() -> None:
    with pytest.raises(LinkError, match="unknown link error 42") as info:
        link.check_link_result(42, ChannelType.MAIN)
    assert info.value.code == 42


# --- building the link message ------------------------------------------------------------


def test_build_link_message_round_trip() -> None:
    common = (CommonCap.PROTOCOL_AUTH_SELECTION, CommonCap.AUTH_SPICE, CommonCap.MINI_HEADER)
    chan = (DisplayCap.MONITORS_CONFIG, 33)
    data = link.build_link_message(0xE38630B0, ChannelType.DISPLAY, 1, common, chan)
    magic, major, minor, size = struct.unpack_from("<IIII", data)
    assert (magic, major, minor) == (LINK_MAGIC, 2, 2)
    assert data[:4] == b"REDQ"
    assert size == len(data) - LINK_HEADER_SIZE == LINK_MESS_SIZE + 4 * 3
    conn, ctype, cid, n_common, n_chan, caps_off = struct.unpack_from("<IBBIII", data, 16)
    assert (conn, ctype, cid) == (0xE38630B0, ChannelType.DISPLAY, 1)
    assert (n_common, n_chan, caps_off) == (1, 2, LINK_MESS_SIZE)
    words = struct.unpack_from("<3I", data, LINK_HEADER_SIZE + caps_off)
    assert words == (0b1011, 0b10, 0b10)


def test_build_link_message_without_caps() -> None:
    data = link.build_link_message(0, ChannelType.MAIN, 0, (), ())
    assert len(data) == LINK_HEADER_SIZE + LINK_MESS_SIZE
    assert struct.unpack_from("<IBBIII", data, 16) == (0, 1, 0, 0, 0, 18)


def test_cap_helpers_round_trip() -> None:
    caps = [0, 3, 31, 32, 70]
    words = link.caps_to_words(caps)
    assert words == [0x8000_0009, 1, 1 << 6]
    assert link.words_to_caps(words) == caps
    assert link.has_cap(words, 70) and not link.has_cap(words, 69)
    assert not link.has_cap(words, 200)


# --- auth mechanism -----------------------------------------------------------------------


def test_choose_auth_mechanism_real_reply() -> None:
    assert link.choose_auth_mechanism(link.parse_link_reply(REPLY)) == struct.pack("<I", 1)


def test_choose_auth_mechanism_without_auth_selection() -> None:
    body = mutate(REPLY, LINK_REPLY_SIZE, 1 << CommonCap.MINI_HEADER)
    assert link.choose_auth_mechanism(link.parse_link_reply(body)) is None


def test_choose_auth_mechanism_sasl_only() -> None:
    body = mutate(REPLY, LINK_REPLY_SIZE, 0b101)  # AUTH_SELECTION + AUTH_SASL
    with pytest.raises(LinkError, match="SASL"):
        link.choose_auth_mechanism(link.parse_link_reply(body))
