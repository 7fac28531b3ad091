"""Seed material shared by the harnesses: the captured sessions and codec payloads of
tests/fixtures, and small hand-built SpiceImages and draws of the kinds the captures lack.

Everything here is cached and deterministic (fixed RNG seeds), so a run is repeatable.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import numpy as np
from tests.codecs.test_lz import _pack  # palette indices packed as LZ PLT rows
from tests.fixtures.records import Record, read_capture

from ryll.codecs import _lz_enc  # type: ignore[attr-defined]
from ryll.codecs import lz as L
from ryll.codecs.quic import GRAY, RGB16, RGB24, RGB32, RGBA, encode_quic
from ryll.protocol.constants import BitmapFlags, BitmapFmt, ChannelType, ImageType
from ryll.protocol.framing import MessageWriter

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SESSION = FIXTURES / "seabios-qxl.spicecap"
STREAM_CAPTURES = tuple(sorted((FIXTURES / "streams").glob("*.spicecap")))


def rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


@cache
def capture(path: Path) -> tuple[Record, ...]:
    return tuple(read_capture(path))


def all_captures() -> tuple[Path, ...]:
    return (SESSION, *STREAM_CAPTURES)


def server_records(path: Path, channel_type: int) -> list[Record]:
    return [r for r in capture(path) if r.direction == "in" and r.channel_type == channel_type]


def bodies(channel_type: int, opcode: int, limit: int = 4) -> list[bytes]:
    """Up to ``limit`` distinct captured server bodies of one message kind, over every
    capture."""
    out: dict[bytes, None] = {}
    for path in all_captures():
        for r in server_records(path, channel_type):
            if r.opcode == opcode and len(out) < limit:
                out[r.body] = None
    return list(out)


def wire(messages: Iterable[tuple[int, bytes]], mini_header: bool = True) -> bytes:
    """Messages framed as a server sends them."""
    writer = MessageWriter(mini_header)
    return b"".join(writer.build(op, body) for op, body in messages)


# --- codec payloads --------------------------------------------------------------------------


def bgra(h: int, w: int, seed: int = 1, alpha: bool = False) -> np.ndarray:
    px = rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    px[: h // 2, : w // 2] = px[0, 0]  # a flat area, so encoders emit runs and matches
    if not alpha:
        px[..., 3] = 255
    return px


@cache
def quic_payloads() -> tuple[bytes, ...]:
    out = []
    for name in ("animate", "static"):
        z = np.load(FIXTURES / "quic" / f"{name}.npz")
        keys = sorted((k for k in z.files if k.startswith("payload_")),
                      key=lambda k: int(k.split("_")[1]))
        out += [z[k].tobytes() for k in keys[:6]]
    img = bgra(6, 9, alpha=True)
    out += [encode_quic(img[..., 0], GRAY)]
    out += [encode_quic(img, t) for t in (RGB16, RGB24, RGB32, RGBA)]
    out += [encode_quic(bgra(1, 1), RGB32), encode_quic(bgra(3, 40), RGBA)]
    return tuple(out)


@cache
def lz_family(name: str) -> tuple[tuple[np.ndarray, tuple[bytes, ...]], ...]:
    """(meta rows, payloads) of tests/fixtures/lz/<name>.npz."""
    z = np.load(FIXTURES / "lz" / f"{name}.npz")
    meta, blob, offs = z["meta"], z["payloads"], z["offsets"]
    return tuple((meta[i], (blob[offs[i]:offs[i + 1]].tobytes(),)) for i in range(len(meta)))


@cache
def lz_synthetic() -> tuple[tuple[int, bytes], ...]:
    """(LZ type, payload) for every LZ image type, small."""
    out = []
    img = bgra(7, 11, alpha=True)
    for typ in (L.RGB24, L.RGB32, L.RGBA, L.XXXA):
        out.append((typ, _lz_enc.encode_lz(typ, img)))
    out.append((L.RGB32, _lz_enc.encode_lz(L.RGB32, img[::-1], top_down=False)))
    out.append((L.XXXA, _lz_enc.encode_lz(L.XXXA, img[::-1], top_down=False)))
    r = rng(3)
    out.append((L.RGB16, _lz_enc.encode_lz(L.RGB16, r.integers(0, 1 << 15, (5, 9)))))
    out.append((L.A8, _lz_enc.encode_lz(L.A8, r.integers(0, 256, (5, 9)).astype(np.uint8))))
    for typ, bits, le in ((L.PLT1_LE, 1, True), (L.PLT1_BE, 1, False), (L.PLT4_LE, 4, True),
                          (L.PLT4_BE, 4, False), (L.PLT8, 8, True)):
        idx = r.integers(0, 1 << bits, (6, 13)).astype(np.uint8)
        idx[:2] = 1
        out.append((typ, _lz_enc.encode_lz(typ, _pack(idx, bits, le), width=13)))
    return tuple(out)


def glz_synthetic(first_id: int = 1) -> list[bytes]:
    """A chain of GLZ images, each of the four types, with consecutive ids."""
    r = rng(5)
    out = []
    for i, typ in enumerate((L.RGB32, L.RGB24, L.RGBA, L.RGB16)):
        img = r.integers(0, 1 << 15, (4, 6)) if typ == L.RGB16 else bgra(4, 6, seed=i, alpha=True)
        out.append(_lz_enc.encode_glz(typ, img, first_id + i, win_head_dist=i,
                                      top_down=i % 2 == 0))
    return out


@cache
def jpegs() -> tuple[bytes, ...]:
    """Captured MJPEG stream frames, and a few small JPEGs of other layouts."""
    import simplejpeg

    from ryll.protocol.messages.stream import parse_stream_data

    frames = [parse_stream_data(b).data
              for b in bodies(ChannelType.DISPLAY, 123, limit=64)][:4]
    img = bgra(16, 24)[..., :3].copy()
    frames.append(simplejpeg.encode_jpeg(img, 75, colorspace="BGR", colorsubsampling="444"))
    frames.append(simplejpeg.encode_jpeg(img, 90, colorspace="BGR", colorsubsampling="420"))
    frames.append(simplejpeg.encode_jpeg(img[..., :1].copy(), 80, colorspace="GRAY"))
    frames.append(simplejpeg.encode_jpeg(bgra(3, 5)[..., :3].copy(), 50, colorspace="BGR",
                                         colorsubsampling="422"))
    return tuple(frames)


def lz4_payload(fmt: int, pixels: np.ndarray, top_down: bool = True, blocks: int = 1) -> bytes:
    """A SPICE LZ4 image payload: top_down, format, then {BE u32 size, LZ4 block}s."""
    import lz4.block

    raw = pixels.tobytes()
    cut = [len(raw) * i // blocks for i in range(blocks + 1)]
    out = bytes([1 if top_down else 0, fmt])
    for a, b in zip(cut, cut[1:], strict=False):
        block = lz4.block.compress(raw[a:b], store_size=False)
        out += struct.pack(">I", len(block)) + block
    return out


# --- SpiceImages ---------------------------------------------------------------------------
# Laid out as ryll.protocol.messages.draw.read_image reads them; ``at`` is the image's offset
# in the message body (pointers inside it are absolute).

DESCRIPTOR = struct.Struct("<QBBII")


def palette_bytes(entries: list[int], unique: int = 0) -> bytes:
    return struct.pack("<QH", unique, len(entries)) + struct.pack(f"<{len(entries)}I", *entries)


def bitmap_image(at: int, fmt: int, width: int, height: int, data: bytes, stride: int,
                 palette: list[int] | None = None, top_down: bool = True, image_id: int = 0,
                 flags: int = 0) -> bytes:
    head = DESCRIPTOR.pack(image_id, ImageType.BITMAP, flags, width, height)
    bflags = BitmapFlags.TOP_DOWN if top_down else 0
    pal_at = at + len(head) + 18 + len(data) if palette else 0
    bitmap = struct.pack("<BBIIII", fmt, bflags, width, height, stride, pal_at)
    return head + bitmap + data + (palette_bytes(palette) if palette else b"")


def blob_image(itype: int, width: int, height: int, payload: bytes, image_id: int = 0,
               flags: int = 0) -> bytes:
    """QUIC, LZ_RGB, GLZ_RGB, JPEG, LZ4: the descriptor and a sized payload."""
    return DESCRIPTOR.pack(image_id, itype, flags, width, height) + struct.pack(
        "<I", len(payload)) + payload


def lz_plt_image(at: int, width: int, height: int, payload: bytes, palette: list[int],
                 image_id: int = 0) -> bytes:
    head = DESCRIPTOR.pack(image_id, ImageType.LZ_PLT, 0, width, height)
    pal_at = at + len(head) + 9 + len(payload)
    return head + struct.pack("<BII", 0, len(payload), pal_at) + payload + palette_bytes(palette)


def zlib_glz_image(width: int, height: int, glz: bytes, image_id: int = 0) -> bytes:
    packed = zlib.compress(glz)
    return DESCRIPTOR.pack(image_id, ImageType.ZLIB_GLZ_RGB, 0, width, height) + struct.pack(
        "<II", len(glz), len(packed)) + packed


def jpeg_alpha_image(width: int, height: int, jpeg: bytes, alpha: bytes) -> bytes:
    return DESCRIPTOR.pack(0, ImageType.JPEG_ALPHA, 0, width, height) + struct.pack(
        "<BII", 1, len(jpeg), len(jpeg) + len(alpha)) + jpeg + alpha


def bitmap_samples() -> list[tuple[int, int, int, int, bytes, list[int] | None]]:
    """(format, width, height, stride, data, palette) for every bitmap format."""
    r = rng(11)
    w, h = 9, 5
    out: list[tuple[int, int, int, int, bytes, list[int] | None]] = []
    pal16 = [int(v) for v in r.integers(0, 1 << 24, 16)]
    pal256 = [int(v) for v in r.integers(0, 1 << 32, 256, dtype=np.uint64)]
    for fmt, bpp in ((BitmapFmt.FMT_32BIT, 32), (BitmapFmt.FMT_RGBA, 32), (BitmapFmt.FMT_24BIT, 24),
                     (BitmapFmt.FMT_16BIT, 16), (BitmapFmt.FMT_8BIT_A, 8),
                     (BitmapFmt.FMT_8BIT, 8), (BitmapFmt.FMT_4BIT_BE, 4),
                     (BitmapFmt.FMT_4BIT_LE, 4), (BitmapFmt.FMT_1BIT_BE, 1),
                     (BitmapFmt.FMT_1BIT_LE, 1)):
        row = (w * bpp + 7) // 8
        stride = row + (fmt % 3)  # some padded strides
        data = r.integers(0, 256, h * stride, dtype=np.uint8).tobytes()
        palette = None
        if fmt in (BitmapFmt.FMT_8BIT,):
            palette = pal256
        elif bpp in (1, 4):
            palette = pal16[: 2 if bpp == 1 else 16]
        out.append((fmt, w, h, stride, data, palette))
    return out


def sample_images(at: int) -> list[bytes]:
    """One small SpiceImage of every kind the display channel decodes, placed at ``at``."""
    import simplejpeg

    img = bgra(8, 8, alpha=True)
    out = []
    for i, (fmt, w, h, stride, data, palette) in enumerate(bitmap_samples()):
        # the first is cached (CACHE_ME, id 42): the FROM_CACHE image below names it
        out.append(bitmap_image(at, fmt, w, h, data, stride, palette, top_down=fmt % 2 == 0,
                                image_id=42 if i == 0 else 0, flags=1 if i == 0 else 0))
    out.append(blob_image(ImageType.QUIC, 9, 6, quic_payloads()[-5]))
    out.append(blob_image(ImageType.LZ_RGB, 11, 7, lz_synthetic()[1][1]))
    idx = rng(2).integers(0, 4, (8, 8)).astype(np.uint8)
    out.append(lz_plt_image(at, 8, 8, _lz_enc.encode_lz(L.PLT8, idx, width=8),
                            [0x112233, 0x445566, 0x778899, 0xAABBCC]))
    glz = glz_synthetic()
    out.append(blob_image(ImageType.GLZ_RGB, 6, 4, glz[0], image_id=1))
    out.append(zlib_glz_image(6, 4, glz[1]))
    jpeg = simplejpeg.encode_jpeg(img[..., :3].copy(), 80, colorspace="BGR")
    out.append(blob_image(ImageType.JPEG, 8, 8, jpeg))
    out.append(jpeg_alpha_image(8, 8, jpeg, _lz_enc.encode_lz(L.XXXA, img)))
    out.append(blob_image(ImageType.LZ4, 8, 8, lz4_payload(8, img, blocks=2)))
    out.append(DESCRIPTOR.pack(0, ImageType.SURFACE, 0, 8, 8) + struct.pack("<I", 0))
    out.append(DESCRIPTOR.pack(42, ImageType.FROM_CACHE, 0, 8, 8))
    return out


# --- draws -----------------------------------------------------------------------------------


def cursor_fixture_messages() -> list[tuple[int, bytes]]:
    """tests/fixtures/cursor/qxl-drm-cursor.bin: mini-header framed cursor messages."""
    data = (FIXTURES / "cursor" / "qxl-drm-cursor.bin").read_bytes()
    out, pos = [], 0
    while pos + 6 <= len(data):
        opcode, size = struct.unpack_from("<HI", data, pos)
        out.append((opcode, data[pos + 6:pos + 6 + size]))
        pos += 6 + size
    return out


def _raw(index: int) -> object:
    """A tests.render.builders Image that encodes as ``sample_images(at)[index]``."""
    from tests.render import builders as B

    class Raw(B.Image):
        def encode(self, at: int) -> bytes:
            return sample_images(at)[index]

    return Raw()


def draw_stroke(segments: list[tuple[int, list[tuple[int, int]]]], style: list[int] | None,
                color: int, box: tuple[int, int, int, int] = (0, 0, 16, 16)) -> bytes:
    """DRAW_STROKE as tests/channels/test_display_stroke.py builds it."""
    from tests.render import builders as B

    b = B.Body()
    B.base(b, box, [(0, 0, 12, 12)])
    path = struct.pack("<I", len(segments))
    for f, pts in segments:
        path += struct.pack("<BI", f, len(pts)) + b"".join(struct.pack("<ii", *p) for p in pts)
    b.pointer(path)
    if style is None:
        b.pack("B", 0)
    else:
        b.pack("BB", 1 << 3, len(style))
        b.pointer(struct.pack(f"<{len(style)}i", *style))
    B.brush(b, color)
    b.pack("HH", 8, 8)
    return b.build()


@cache
def synthetic_draws() -> tuple[tuple[int, bytes], ...]:
    """(display opcode, body) of every draw kind, small, with images of every kind."""
    from tests.render import builders as B

    put = 1 << 3  # Ropd.OP_PUT
    img = B.Image(pixels=bgra(4, 5))
    pat = B.Image(pixels=bgra(2, 3, seed=3))
    mask = B.Image(bits=rng(6).integers(0, 2, (6, 6)).astype(bool), fmt=BitmapFmt.FMT_1BIT_BE)
    clip = [(1, 1, 5, 9), (4, 2, 8, 6)]
    out: list[tuple[int, bytes]] = []
    for i in range(len(sample_images(0))):
        out.append((304, B.draw_copy((0, 0, 8, 8), _raw(i), (0, 0, 4, 4), put)))  # type: ignore[arg-type]
    out += [
        (304, B.draw_copy((1, 2, 9, 12), img, (0, 0, 4, 5), put, scale_mode=0, clip=clip,
                          mask=mask, mask_pos=(1, 1), mask_flags=1)),
        (305, B.draw_copy((0, 0, 5, 5), img, (0, 0, 4, 5), 1 << 4)),
        (302, B.draw_fill((0, 0, 6, 7), put, 0x123456, clip=clip)),
        (302, B.draw_fill((2, 2, 9, 9), 1 << 6, pattern=pat, pattern_pos=(1, 2), mask=mask)),
        (303, B.draw_opaque((0, 0, 6, 6), img, (0, 0, 4, 5), put | 1, pattern=pat)),
        (306, B.draw_mask_only((0, 0, 4, 4), clip=clip)),
        (307, B.draw_mask_only((0, 0, 6, 6), mask=mask)),
        (308, B.draw_mask_only((1, 1, 3, 3))),
        (309, B.draw_rop3((0, 0, 8, 8), img, (0, 0, 4, 5), 0xCA, color=0x00FF00, clip=clip)),
        (309, B.draw_rop3((0, 0, 12, 10), img, (0, 0, 2, 2), 0x96, pattern=pat, scale_mode=0,
                          mask=mask)),
        (312, B.draw_transparent((0, 0, 5, 5), img, (0, 0, 4, 5), 0x00FFFFFF, 0x00FFFFFF)),
        (313, B.draw_alpha_blend((0, 0, 9, 9), B.Image(pixels=bgra(4, 4, alpha=True),
                                                       fmt=BitmapFmt.FMT_RGBA), (0, 0, 4, 4), 128,
                                 flags=2)),
        (311, B.draw_text((0, 0, 10, 16), 1, [B.glyph((2, 8), (0, -4), np.ones((4, 3), int), 1)],
                          (0, 0, 10, 16), fore_color=0x102030, back_color=0xF0E0D0)),
        (311, B.draw_text((0, 0, 10, 16), 1 << 2 | 1 << 3,
                          [B.glyph((1, 6), (-1, -3), rng(8).integers(0, 256, (3, 5)), 8),
                           B.glyph((6, 6), (0, -3), rng(9).integers(0, 256, (2, 2)), 8)],
                          (1, 1, 4, 4), fore_pattern=pat, back_color=None)),
        (311, B.draw_text((0, 0, 8, 8), 1 << 1, [B.glyph((1, 5), (0, -3),
                                                         rng(2).integers(0, 16, (3, 3)), 4)],
                          (0, 0, 0, 0), fore_color=0xFF)),
        (318, B.draw_composite((0, 0, 8, 8), 3, B.Image(pixels=bgra(4, 4, alpha=True),
                                                         fmt=BitmapFmt.FMT_RGBA),
                               src_origin=(1, -1), clip=clip)),
        (318, B.draw_composite((0, 0, 8, 8), 3 | (1 << 19) | (1 << 20) | (1 << 21) | (1 << 14),
                               B.Image(pixels=bgra(3, 3)), B.Image(pixels=bgra(3, 3, seed=2)),
                               src_transform=(1 << 16, 1 << 14, 0, -(1 << 15), 1 << 16, 1 << 16),
                               mask_transform=(2 << 16, 0, 0, 0, 2 << 16, 0))),
        (310, draw_stroke([(1 | 2, [(16, 32), (144, 96)])], None, 0x112233)),
        (310, draw_stroke([(1, [(0, 0), (64, 0)]), (2 | 8 | 16, [(64, 64), (0, 64), (16, 16)])],
                          [32, 16, 48], 0xABCDEF)),
    ]
    copy_bits = B.Body()
    B.base(copy_bits, (2, 2, 8, 8))
    copy_bits.pack("ii", 0, 1)
    out.append((104, copy_bits.build()))
    return tuple(out)
