"""Pin ryll.protocol.constants to spice-protocol's installed headers, both ways.

The header checks parse ``spice/enums.h`` and ``spice/protocol.h`` (Debian
libspice-protocol-dev puts them in /usr/include/spice-1/spice; override with
RYLL_SPICE_PROTOCOL_INCLUDE) and skip when they are absent. The pinned-value tests at the end
never skip, so a machine without the headers still catches the values ryll depends on most.
"""

from __future__ import annotations

import ast
import enum
import operator
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ryll.protocol import constants as c

HEADER_DIR = Path(os.environ.get("RYLL_SPICE_PROTOCOL_INCLUDE", "/usr/include/spice-1/spice"))


# --- a small C header reader -----------------------------------------------------------------


@dataclass
class Headers:
    """What the tests need from the headers: enum blocks, #define values and struct sizes."""

    #: enum block key (typedef name, else its first member) -> [(name, value)] in header order.
    blocks: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    #: every enum member and numeric #define -> value.
    values: dict[str, int] = field(default_factory=dict)
    #: packed struct name -> sizeof.
    struct_sizes: dict[str, int] = field(default_factory=dict)
    #: raw protocol.h text, for the few checks that are not numbers.
    protocol_text: str = ""


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


# C integer operators; "/" on ints truncates, which floordiv matches for the header's
# non-negative values.
_BINARY_OPS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.floordiv,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
}


def _eval(expr: str, names: dict[str, int]) -> int:
    """Evaluate an integer C constant expression: literals, names, + - * / << >> | & ()."""
    expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", expr.strip())

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return names[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp):
            op = _BINARY_OPS.get(type(node.op))
            if op is not None:
                return op(ev(node.left), ev(node.right))
        raise ValueError(f"unsupported C expression {expr!r}")

    return ev(ast.parse(expr, mode="eval"))


_ENUM_RE = re.compile(r"\benum\s*(\w+)?\s*\{(.*?)\}\s*(\w+)?\s*;", re.S)
_DEFINE_RE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+(.+?)[ \t]*$", re.M)
_STRUCT_RE = re.compile(r"typedef\s+struct\s+SPICE_ATTR_PACKED\s+(\w+)\s*\{(.*?)\}", re.S)
_FIELD_RE = re.compile(r"u?int(8|16|32|64)_t\s+(\w+)\s*(?:\[([^\]]*)\])?\s*;")


def parse_headers(
    header_dir: Path, filenames: tuple[str, ...] = ("enums.h", "protocol.h")
) -> Headers:
    headers = Headers()
    for filename in filenames:
        text = _strip_comments((header_dir / filename).read_text())
        if filename == "protocol.h":
            headers.protocol_text = text
        for define_name, expr in _DEFINE_RE.findall(text):
            try:
                headers.values[define_name] = _eval(expr, headers.values)
            except (ValueError, KeyError, SyntaxError):
                pass  # include guards, SPICE_MAGIC_CONST("REDQ"), ...
        for tag, body, typedef_name in _ENUM_RE.findall(text):
            members: list[tuple[str, int]] = []
            next_value = 0
            for item in body.split(","):
                item = item.strip()
                if not item:
                    continue
                # "NAME [ATTRIBUTE] [= expr]", e.g. "SPICE_AUDIO_DATA_MODE_CELT_0_5_1
                # SPICE_GNUC_DEPRECATED".
                lhs, _, expr = item.partition("=")
                name = lhs.split()[0]
                value = _eval(expr, headers.values) if expr else next_value
                headers.values[name] = value
                members.append((name, value))
                next_value = value + 1
            key = typedef_name or tag or members[0][0]
            assert key not in headers.blocks, f"duplicate enum block key {key}"
            headers.blocks[key] = members
        for struct_name, body in _STRUCT_RE.findall(text):
            size = 0
            for bits, _name, count in _FIELD_RE.findall(body):
                size += int(bits) // 8 * (_eval(count, headers.values) if count else 1)
            headers.struct_sizes[struct_name] = size
    return headers


@pytest.fixture(scope="module")
def headers() -> Headers:
    if not (HEADER_DIR / "enums.h").is_file() or not (HEADER_DIR / "protocol.h").is_file():
        pytest.skip(
            f"spice-protocol headers not found in {HEADER_DIR} "
            "(install libspice-protocol-dev or set RYLL_SPICE_PROTOCOL_INCLUDE)"
        )
    return parse_headers(HEADER_DIR)


def is_sentinel(name: str) -> bool:
    """Header names that bound an enum rather than name a value."""
    return (
        name.endswith("_ENUM_END")
        or name.endswith("_FIRST")
        or name == "SPICE_MSG_BASE_LAST"
        or re.match(r"SPICE_(MSGC?_)?END_", name) is not None
    )


# --- which header enum each ryll class mirrors -----------------------------------------------

# ryll class -> [(header enum block key, prefix stripped from its member names)].
MIRRORS: dict[type[enum.IntEnum], list[tuple[str, str]]] = {
    c.LinkResult: [("SpiceLinkErr", "SPICE_LINK_ERR_")],
    c.WarnCode: [("SpiceWarnCode", "SPICE_WARN_")],
    c.InfoCode: [("SpiceInfoCode", "SPICE_INFO_")],
    c.ChannelType: [("SPICE_CHANNEL_MAIN", "SPICE_CHANNEL_")],
    c.BaseServer: [("SPICE_MSG_MIGRATE", "SPICE_MSG_")],
    c.BaseClient: [("SPICE_MSGC_ACK_SYNC", "SPICE_MSGC_")],
    c.MainServer: [("SPICE_MSG_MAIN_MIGRATE_BEGIN", "SPICE_MSG_MAIN_")],
    c.MainClient: [("SPICE_MSGC_MAIN_CLIENT_INFO", "SPICE_MSGC_MAIN_")],
    c.DisplayServer: [("SPICE_MSG_DISPLAY_MODE", "SPICE_MSG_DISPLAY_")],
    c.DisplayClient: [("SPICE_MSGC_DISPLAY_INIT", "SPICE_MSGC_DISPLAY_")],
    c.InputsServer: [("SPICE_MSG_INPUTS_INIT", "SPICE_MSG_INPUTS_")],
    c.InputsClient: [("SPICE_MSGC_INPUTS_KEY_DOWN", "SPICE_MSGC_INPUTS_")],
    c.CursorServer: [("SPICE_MSG_CURSOR_INIT", "SPICE_MSG_CURSOR_")],
    c.CursorClient: [],
    c.PlaybackServer: [("SPICE_MSG_PLAYBACK_DATA", "SPICE_MSG_PLAYBACK_")],
    c.PlaybackClient: [],
    c.RecordServer: [("SPICE_MSG_RECORD_START", "SPICE_MSG_RECORD_")],
    c.RecordClient: [("SPICE_MSGC_RECORD_DATA", "SPICE_MSGC_RECORD_")],
    c.TunnelServer: [],
    c.TunnelClient: [],
    c.SmartcardServer: [("SPICE_MSG_SMARTCARD_DATA", "SPICE_MSG_SMARTCARD_")],
    c.SmartcardClient: [("SPICE_MSGC_SMARTCARD_DATA", "SPICE_MSGC_SMARTCARD_")],
    c.SpicevmcServer: [("SPICE_MSG_SPICEVMC_DATA", "SPICE_MSG_SPICEVMC_")],
    c.SpicevmcClient: [("SPICE_MSGC_SPICEVMC_DATA", "SPICE_MSGC_SPICEVMC_")],
    c.PortServer: [
        ("SPICE_MSG_SPICEVMC_DATA", "SPICE_MSG_SPICEVMC_"),
        ("SPICE_MSG_PORT_INIT", "SPICE_MSG_PORT_"),
    ],
    c.PortClient: [
        ("SPICE_MSGC_SPICEVMC_DATA", "SPICE_MSGC_SPICEVMC_"),
        ("SPICE_MSGC_PORT_EVENT", "SPICE_MSGC_PORT_"),
    ],
    c.CommonCap: [("SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION", "SPICE_COMMON_CAP_")],
    c.MainCap: [("SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE", "SPICE_MAIN_CAP_")],
    c.DisplayCap: [("SPICE_DISPLAY_CAP_SIZED_STREAM", "SPICE_DISPLAY_CAP_")],
    c.InputsCap: [("SPICE_INPUTS_CAP_KEY_SCANCODE", "SPICE_INPUTS_CAP_")],
    c.PlaybackCap: [("SPICE_PLAYBACK_CAP_CELT_0_5_1", "SPICE_PLAYBACK_CAP_")],
    c.RecordCap: [("SPICE_RECORD_CAP_CELT_0_5_1", "SPICE_RECORD_CAP_")],
    c.SpicevmcCap: [("SPICE_SPICEVMC_CAP_DATA_COMPRESS_LZ4", "SPICE_SPICEVMC_CAP_")],
    c.PortEvent: [("SPICE_PORT_EVENT_OPENED", "SPICE_PORT_EVENT_")],
    c.MigrateFlags: [("SpiceMigrateFlags", "SPICE_MIGRATE_")],
    c.CompositeFlags: [("SpiceCompositeFlags", "SPICE_COMPOSITE_")],
    c.NotifySeverity: [("SpiceNotifySeverity", "SPICE_NOTIFY_SEVERITY_")],
    c.NotifyVisibility: [("SpiceNotifyVisibility", "SPICE_NOTIFY_VISIBILITY_")],
    c.MouseMode: [("SpiceMouseMode", "SPICE_MOUSE_MODE_")],
    c.DataCompressionType: [("SpiceDataCompressionType", "SPICE_DATA_COMPRESSION_TYPE_")],
    c.ClipType: [("SpiceClipType", "SPICE_CLIP_TYPE_")],
    c.PathFlags: [("SpicePathFlags", "SPICE_PATH_")],
    c.VideoCodecType: [("SpiceVideoCodecType", "SPICE_VIDEO_CODEC_TYPE_")],
    c.StreamFlags: [("SpiceStreamFlags", "SPICE_STREAM_FLAGS_")],
    c.BrushType: [("SpiceBrushType", "SPICE_BRUSH_TYPE_")],
    c.MaskFlags: [("SpiceMaskFlags", "SPICE_MASK_FLAGS_")],
    c.ImageType: [("SpiceImageType", "SPICE_IMAGE_TYPE_")],
    c.ImageCompression: [("SpiceImageCompression", "SPICE_IMAGE_COMPRESSION_")],
    c.ImageFlags: [("SpiceImageFlags", "SPICE_IMAGE_FLAGS_")],
    c.BitmapFmt: [("SpiceBitmapFmt", "SPICE_BITMAP_")],
    c.BitmapFlags: [("SpiceBitmapFlags", "SPICE_BITMAP_FLAGS_")],
    c.JpegAlphaFlags: [("SpiceJpegAlphaFlags", "SPICE_JPEG_ALPHA_FLAGS_")],
    c.ImageScaleMode: [("SpiceImageScaleMode", "SPICE_IMAGE_SCALE_MODE_")],
    c.Ropd: [("SpiceRopd", "SPICE_ROPD_")],
    c.LineFlags: [("SpiceLineFlags", "SPICE_LINE_FLAGS_")],
    c.StringFlags: [("SpiceStringFlags", "SPICE_STRING_FLAGS_")],
    c.SurfaceFlags: [("SpiceSurfaceFlags", "SPICE_SURFACE_FLAGS_")],
    c.SurfaceFmt: [("SpiceSurfaceFmt", "SPICE_SURFACE_")],
    c.AlphaFlags: [("SpiceAlphaFlags", "SPICE_ALPHA_FLAGS_")],
    c.ResourceType: [("SpiceResourceType", "SPICE_RES_TYPE_")],
    c.GlScanoutFlags: [("SpiceGlScanoutFlags", "SPICE_GL_SCANOUT_FLAGS_")],
    c.KeyboardModifierFlags: [("SpiceKeyboardModifierFlags", "SPICE_KEYBOARD_MODIFIER_FLAGS_")],
    c.MouseButton: [("SpiceMouseButton", "SPICE_MOUSE_BUTTON_")],
    c.MouseButtonMask: [("SpiceMouseButtonMask", "SPICE_MOUSE_BUTTON_MASK_")],
    c.CursorType: [("SpiceCursorType", "SPICE_CURSOR_TYPE_")],
    c.CursorFlags: [("SpiceCursorFlags", "SPICE_CURSOR_FLAGS_")],
    c.AudioDataMode: [("SpiceAudioDataMode", "SPICE_AUDIO_DATA_MODE_")],
    c.AudioFmt: [("SpiceAudioFmt", "SPICE_AUDIO_FMT_")],
    c.VscMessageType: [("SpiceVscMessageType", "SPICE_VSC_MESSAGE_TYPE_")],
}

# Members ryll adds that the header does not spell: (class, member name) -> the header name it
# stands for. Keyed by name because an enum alias resolves to its canonical member.
EXTRA_ALIASES: dict[tuple[type[enum.IntEnum], str], str] = {
    (c.CompositeFlags, "MASK_FILTER1"): "SPICE_COMPOSITE_MASK_FITLER1",
}

# Enums of ryll's own with no header enum behind them: class -> {member: header name}.
DERIVED: dict[type[enum.IntEnum], dict[str, str]] = {
    # reds_handle_auth_mechanism() compares the wire value with these common caps.
    c.AuthMechanism: {"SPICE": "SPICE_COMMON_CAP_AUTH_SPICE", "SASL": "SPICE_COMMON_CAP_AUTH_SASL"},
}

# The header's channel word in SPICE_MSG[C]_<WORD>_* -> the channel types using those opcodes
# (spice.proto: UsbredirChannel and PortChannel derive from SpicevmcChannel, WebDAVChannel from
# PortChannel).
HEADER_CHANNEL_WORDS: dict[str, list[c.ChannelType]] = {
    "MAIN": [c.ChannelType.MAIN],
    "DISPLAY": [c.ChannelType.DISPLAY],
    "INPUTS": [c.ChannelType.INPUTS],
    "CURSOR": [c.ChannelType.CURSOR],
    "PLAYBACK": [c.ChannelType.PLAYBACK],
    "RECORD": [c.ChannelType.RECORD],
    "TUNNEL": [c.ChannelType.TUNNEL],
    "SMARTCARD": [c.ChannelType.SMARTCARD],
    "SPICEVMC": [c.ChannelType.USBREDIR, c.ChannelType.PORT, c.ChannelType.WEBDAV],
    "PORT": [c.ChannelType.PORT, c.ChannelType.WEBDAV],
}


def _class_id(cls: object) -> str:
    return getattr(cls, "__name__", repr(cls))


ALL_CLASSES = sorted(MIRRORS, key=_class_id)


def _block_names(headers: Headers, key: str, prefix: str) -> dict[str, tuple[str, int]]:
    """Member suffix -> (header name, value) for one header block, sentinels dropped."""
    assert key in headers.blocks, f"header has no enum block {key}"
    out = {}
    for name, value in headers.blocks[key]:
        if is_sentinel(name):
            continue
        assert name.startswith(prefix), f"{name} in block {key} lacks prefix {prefix}"
        out[name.removeprefix(prefix)] = (name, value)
    return out


# --- header checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=_class_id)
def test_every_member_matches_header(headers: Headers, cls: type[enum.IntEnum]) -> None:
    blocks = [_block_names(headers, key, prefix) for key, prefix in MIRRORS[cls]]
    for member_name, member in cls.__members__.items():
        found = [block[member_name] for block in blocks if member_name in block]
        if not found and (cls, member_name) in EXTRA_ALIASES:
            header_name = EXTRA_ALIASES[(cls, member_name)]
            found = [(header_name, headers.values[header_name])]
        assert found, f"{cls.__name__}.{member_name} is not in the header"
        for header_name, value in found:
            assert int(member) == value, f"{cls.__name__}.{member_name} != {header_name} ({value})"


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=_class_id)
def test_no_header_member_missing(headers: Headers, cls: type[enum.IntEnum]) -> None:
    for key, prefix in MIRRORS[cls]:
        for suffix, (header_name, _value) in _block_names(headers, key, prefix).items():
            assert suffix in cls.__members__, f"{header_name} missing from {cls.__name__}"


def test_every_header_enum_is_mirrored(headers: Headers) -> None:
    claimed = {key for pairs in MIRRORS.values() for key, _prefix in pairs}
    unclaimed = set(headers.blocks) - claimed
    assert not unclaimed, f"header enums with no ryll class: {sorted(unclaimed)}"


def test_every_constants_enum_is_checked() -> None:
    defined = {
        obj
        for obj in vars(c).values()
        if isinstance(obj, type) and issubclass(obj, enum.Enum) and obj.__module__ == c.__name__
    }
    unchecked = defined - set(MIRRORS) - set(DERIVED)
    assert not unchecked, f"enums not pinned to the header: {sorted(x.__name__ for x in unchecked)}"


@pytest.mark.parametrize("cls", sorted(DERIVED, key=_class_id), ids=_class_id)
def test_derived_enums_match_header(headers: Headers, cls: type[enum.IntEnum]) -> None:
    assert set(cls.__members__) == set(DERIVED[cls])
    for member_name, header_name in DERIVED[cls].items():
        assert int(cls[member_name]) == headers.values[header_name]


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=_class_id)
def test_flag_enums_are_intflag(headers: Headers, cls: type[enum.IntEnum]) -> None:
    # A header enum with a *_MASK member is a bit set; ryll must be able to combine its members.
    has_mask = any(
        name.endswith("MASK") for key, _prefix in MIRRORS[cls] for name, _ in headers.blocks[key]
    )
    assert issubclass(cls, enum.IntFlag) == has_mask, cls.__name__


def _message_blocks(headers: Headers) -> list[tuple[str, list[tuple[str, int]]]]:
    return [
        (key, members)
        for key, members in headers.blocks.items()
        if members and re.match(r"SPICE_MSGC?_", members[0][0])
    ]


def test_every_header_opcode_has_a_member(headers: Headers) -> None:
    """Every SPICE_MSG_* / SPICE_MSGC_* opcode is reachable through the channel tables."""
    base = {"SPICE_MSG_": c.BaseServer, "SPICE_MSGC_": c.BaseClient}
    tables = {"SPICE_MSG_": c.SERVER_MESSAGES, "SPICE_MSGC_": c.CLIENT_MESSAGES}
    checked = 0
    for key, members in _message_blocks(headers):
        direction = "SPICE_MSGC_" if key.startswith("SPICE_MSGC_") else "SPICE_MSG_"
        for name, value in members:
            if is_sentinel(name):
                continue
            checked += 1
            rest = name.removeprefix(direction)
            if key in ("SPICE_MSG_MIGRATE", "SPICE_MSGC_ACK_SYNC"):
                assert base[direction][rest] == value, name
                continue
            word, _, suffix = rest.partition("_")
            assert word in HEADER_CHANNEL_WORDS, f"{name}: unknown channel word {word}"
            for channel in HEADER_CHANNEL_WORDS[word]:
                enum_cls = tables[direction][channel]
                assert suffix in enum_cls.__members__, f"{name} missing from {enum_cls.__name__}"
                assert enum_cls[suffix] == value, name
    assert checked > 100  # the parser really read the opcode blocks


@pytest.mark.parametrize("direction", ["SPICE_MSG_", "SPICE_MSGC_"])
def test_channel_tables_hold_only_header_opcodes(headers: Headers, direction: str) -> None:
    """The reverse: every member of SERVER_/CLIENT_MESSAGES[channel] is a header opcode of a
    channel that the channel type inherits from."""
    table = c.SERVER_MESSAGES if direction == "SPICE_MSG_" else c.CLIENT_MESSAGES
    assert set(table) == set(c.ChannelType)
    for channel, enum_cls in table.items():
        words = [w for w, channels in HEADER_CHANNEL_WORDS.items() if channel in channels]
        for member_name, member in enum_cls.__members__.items():
            values = [
                headers.values[f"{direction}{word}_{member_name}"]
                for word in words
                if f"{direction}{word}_{member_name}" in headers.values
            ]
            assert values, f"{enum_cls.__name__}.{member_name} not a {channel.name} opcode"
            assert all(v == member for v in values), f"{enum_cls.__name__}.{member_name}"


def test_base_last(headers: Headers) -> None:
    assert c.BASE_LAST == headers.values["SPICE_MSG_BASE_LAST"]
    assert all(m <= c.BASE_LAST for m in (*c.BaseServer, *c.BaseClient))


def test_protocol_defines(headers: Headers) -> None:
    v = headers.values
    assert c.VERSION_MAJOR == v["SPICE_VERSION_MAJOR"]
    assert c.VERSION_MINOR == v["SPICE_VERSION_MINOR"]
    assert c.MAX_PASSWORD_LENGTH == v["SPICE_MAX_PASSWORD_LENGTH"]
    assert c.TICKET_KEY_PAIR_LENGTH == v["SPICE_TICKET_KEY_PAIR_LENGTH"]
    assert c.TICKET_PUBKEY_BYTES == v["SPICE_TICKET_PUBKEY_BYTES"]
    assert c.MAX_NUM_STREAMS == v["SPICE_MAX_NUM_STREAMS"]
    assert c.INPUT_MOTION_ACK_BUNCH == v["SPICE_INPUT_MOTION_ACK_BUNCH"]


def test_link_magic(headers: Headers) -> None:
    # SPICE_MAGIC_CONST(s) packs s[0] into the low byte, so on the little-endian wire the magic
    # reads as the string itself.
    match = re.search(
        r'#define\s+SPICE_MAGIC\s+SPICE_MAGIC_CONST\("(.{4})"\)', headers.protocol_text
    )
    assert match is not None
    assert c.LINK_MAGIC == int.from_bytes(match.group(1).encode("ascii"), "little")


def test_struct_sizes(headers: Headers) -> None:
    sizes = headers.struct_sizes
    assert c.LINK_HEADER_SIZE == sizes["SpiceLinkHeader"]
    assert c.LINK_MESS_SIZE == sizes["SpiceLinkMess"]
    assert c.LINK_REPLY_SIZE == sizes["SpiceLinkReply"]
    assert c.TICKET_ENCRYPTED_BYTES == sizes["SpiceLinkEncryptedTicket"]
    assert c.LINK_AUTH_MECHANISM_SIZE == sizes["SpiceLinkAuthMechanism"]
    assert c.DATA_HEADER_SIZE == sizes["SpiceDataHeader"]
    assert c.MINI_DATA_HEADER_SIZE == sizes["SpiceMiniDataHeader"]
    assert c.SUB_MESSAGE_SIZE == sizes["SpiceSubMessage"]
    assert c.SUB_MESSAGE_LIST_SIZE == sizes["SpiceSubMessageList"]


def test_parser_handles_c_expressions() -> None:
    """The header reader itself: implicit increments, references, hex, shifts, attributes."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "enums.h").write_text(
            "/* c */ enum { A_FIRST = 1, A_B, A_C = 0x10, // x\n A_D = (1 << 5), A_E = A_B,"
            " A_F SOME_ATTR, };\n"
            "typedef enum T { T_X = A_C + 1, T_Y } T;\n"
        )
        Path(tmp, "protocol.h").write_text(
            "#define K 1024\n#define KB (K / 8 + 34)\n"
            "typedef struct SPICE_ATTR_PACKED S { uint32_t a; uint8_t k[K / 8]; } S;\n"
        )
        h = parse_headers(Path(tmp))
    assert h.blocks["A_FIRST"] == [
        ("A_FIRST", 1),
        ("A_B", 2),
        ("A_C", 16),
        ("A_D", 32),
        ("A_E", 2),
        ("A_F", 3),
    ]
    assert h.blocks["T"] == [("T_X", 17), ("T_Y", 18)]
    assert h.values["KB"] == 162
    assert h.struct_sizes["S"] == 132


# --- pinned values: never skip ----------------------------------------------------------------


def test_pinned_values() -> None:
    assert c.DisplayServer.STREAM_DESTROY_ALL == 126
    assert c.BaseServer.SET_ACK == 3
    assert c.BaseServer.PING == 4
    assert c.BaseServer.LIST == 8
    assert c.BaseClient.ACK == 2
    assert c.BaseClient.PONG == 3
    assert c.MainServer.INIT == 103
    assert c.MainClient.ATTACH_CHANNELS == 104
    assert c.DisplayServer.SURFACE_CREATE == 314
    assert c.DisplayServer.DRAW_COPY == 304
    assert c.DisplayClient.INIT == 101
    assert c.DisplayCap.CODEC_H265 == 14
    assert c.CommonCap.MINI_HEADER == 3
    assert c.ChannelType.WEBDAV == 11
    assert c.LinkResult.PERMISSION_DENIED == 7
    assert c.ImageType.LZ4 == 109
    assert c.ImageCompression.LZ4 == 7
    assert c.SurfaceFmt.FMT_32_xRGB == 32
    assert c.LINK_MAGIC == 0x51444552
    assert c.LINK_MAGIC.to_bytes(4, "little") == b"REDQ"
    assert (c.VERSION_MAJOR, c.VERSION_MINOR) == (2, 2)
    assert c.TICKET_PUBKEY_BYTES == 162
    assert c.TICKET_ENCRYPTED_BYTES == 128
    assert c.MAX_PASSWORD_LENGTH == 60
    assert c.LINK_REPLY_SIZE == 178


def test_auth_mechanism_is_the_common_cap_number() -> None:
    assert c.AuthMechanism.SPICE == c.CommonCap.AUTH_SPICE == 1
    assert c.AuthMechanism.SASL == c.CommonCap.AUTH_SASL == 2


def test_port_tables_extend_spicevmc() -> None:
    for vmc, port in ((c.SpicevmcServer, c.PortServer), (c.SpicevmcClient, c.PortClient)):
        for member in vmc:
            assert port[member.name] == member
    assert c.SERVER_MESSAGES[c.ChannelType.WEBDAV] is c.PortServer
    assert c.CLIENT_MESSAGES[c.ChannelType.USBREDIR] is c.SpicevmcClient


def test_channel_enums_hold_no_base_opcodes() -> None:
    for table in (c.SERVER_MESSAGES, c.CLIENT_MESSAGES):
        for enum_cls in table.values():
            assert all(member > c.BASE_LAST for member in enum_cls), enum_cls.__name__


# --- vd_agent.h: the guest agent's protocol (ryll.protocol.agent) ---------------------------


def _vd_agent_values(path: Path) -> dict[str, int]:
    """Enum members and numeric #defines of vd_agent.h. Its enums are anonymous and their
    values plain numbers or shifts; members whose value is not (sizeof arithmetic) are left
    out, and so are ``#if 0`` blocks."""
    text = _strip_comments(path.read_text())
    text = re.sub(r"#if 0.*?#endif", " ", text, flags=re.S)
    values: dict[str, int] = {}
    for define_name, expr in _DEFINE_RE.findall(text):
        try:
            values[define_name] = _eval(expr, values)
        except (ValueError, KeyError, SyntaxError):
            pass
    for body in re.findall(r"enum\s*\w*\s*\{(.*?)\}", text, flags=re.S):
        next_value = 0
        for item in body.split(","):
            lhs, _, expr = item.strip().partition("=")
            if not lhs:
                continue
            try:
                value = _eval(expr, values) if expr else next_value
            except (ValueError, KeyError, SyntaxError):
                continue
            values[lhs.split()[0]] = value
            next_value = value + 1
    return values


def test_agent_constants_match_vd_agent_h() -> None:
    from ryll.protocol import agent as va

    path = HEADER_DIR / "vd_agent.h"
    if not path.is_file():
        pytest.skip(f"vd_agent.h not found in {HEADER_DIR}")
    values = _vd_agent_values(path)
    pinned: list[tuple[type[enum.IntEnum], str]] = [
        (va.AgentMsg, "VD_AGENT_"),
        (va.AgentCap, "VD_AGENT_CAP_"),
        (va.ClipboardType, "VD_AGENT_CLIPBOARD_"),
        (va.Selection, "VD_AGENT_CLIPBOARD_SELECTION_"),
        (va.ReplyError, "VD_AGENT_"),
    ]
    for cls, prefix in pinned:
        for member in cls:
            assert values[prefix + member.name] == member.value, (cls.__name__, member.name)
    # Every message type and capability the header has is known to ryll.
    assert len(va.AgentMsg) == values["VD_AGENT_END_MESSAGE"] - 1
    assert len(va.AgentCap) == values["VD_AGENT_END_CAP"]
    assert va.Port.CLIENT == values["VDP_CLIENT_PORT"]
    assert va.Port.SERVER == values["VDP_SERVER_PORT"]
    assert va.MONITORS_FLAG_USE_POS == values["VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS"]
    assert va.MONITORS_FLAG_PHYSICAL_SIZE == values["VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE"]
    assert va.MAX_DATA_SIZE == values["VD_AGENT_MAX_DATA_SIZE"]
    assert va.PROTOCOL == values["VD_AGENT_PROTOCOL"]
