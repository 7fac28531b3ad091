"""A bounded little-endian reader over one message body.

Every size and pointer offset the server sends goes through here, so a parser cannot read past
the message it was given: an overrun raises ``ProtocolError`` naming what was being read. Pointer
fields (``Type *x`` in spice.proto) are u32 offsets from the start of the body; ``at()`` checks
them in this one place, the way spice-common's generated demarshallers check ``message_end``.
"""

from __future__ import annotations

import builtins
import struct
from collections.abc import Iterator
from typing import Any

from ryll.errors import ProtocolError

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_I16 = struct.Struct("<h")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")


class Reader:
    """Reads fixed-size fields from ``data[start:end]``; never beyond ``end``."""

    __slots__ = ("_data", "_pos", "_end", "_base", "what")

    def __init__(
        self, data: bytes | memoryview, pos: int = 0, end: int | None = None, what: str = "message"
    ) -> None:
        self._data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self._base = 0
        self._pos = pos
        self._end = len(data) if end is None else end
        if not 0 <= pos <= self._end <= len(data):
            raise ProtocolError(f"{what}: bad bounds {pos}..{end} of {len(data)} bytes")
        self.what = what

    @property
    def pos(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def _take(self, n: int, field: str) -> int:
        if n < 0 or n > self._end - self._pos:
            raise ProtocolError(
                f"{self.what}: {field} needs {n} bytes at offset {self._pos}, "
                f"only {self._end - self._pos} left"
            )
        pos = self._pos
        self._pos = pos + n
        return pos

    def u8(self) -> int:
        return _U8.unpack_from(self._data, self._take(1, "u8"))[0]  # type: ignore[no-any-return]

    def u16(self) -> int:
        return _U16.unpack_from(self._data, self._take(2, "u16"))[0]  # type: ignore[no-any-return]

    def i16(self) -> int:
        return _I16.unpack_from(self._data, self._take(2, "i16"))[0]  # type: ignore[no-any-return]

    def u32(self) -> int:
        return _U32.unpack_from(self._data, self._take(4, "u32"))[0]  # type: ignore[no-any-return]

    def i32(self) -> int:
        return _I32.unpack_from(self._data, self._take(4, "i32"))[0]  # type: ignore[no-any-return]

    def u64(self) -> int:
        return _U64.unpack_from(self._data, self._take(8, "u64"))[0]  # type: ignore[no-any-return]

    def i64(self) -> int:
        return _I64.unpack_from(self._data, self._take(8, "i64"))[0]  # type: ignore[no-any-return]

    def bytes(self, n: int, field: str = "bytes") -> builtins.bytes:
        pos = self._take(n, field)
        return bytes(self._data[pos : pos + n])

    def fields(self, layout: struct.Struct, field: str) -> tuple[Any, ...]:
        """Consecutive fixed-size fields (``layout``: little-endian, no padding, as the wire
        packs them) in one bounds check and one unpack: the hot parsers read a message's
        fixed part this way instead of a call per field."""
        return layout.unpack_from(self._data, self._take(layout.size, field))

    def records(self, layout: struct.Struct, n: int, field: str) -> Iterator[tuple[Any, ...]]:
        """``n`` consecutive fixed-layout records (an array of small structs), unpacked in one
        C loop rather than field by field; checked to fit before anything is read."""
        self.count(n, layout.size, field)
        pos = self._take(n * layout.size, field)
        return layout.iter_unpack(self._data[pos : pos + n * layout.size])

    def rest(self) -> builtins.bytes:
        """``uint8 data[]`` without a size: everything to the end of the message."""
        return self.bytes(self.remaining, "trailing data")

    def skip(self, n: int) -> None:
        self._take(n, "padding")

    def count(self, n: int, item_size: int, field: str) -> int:
        """Check that ``n`` items of ``item_size`` bytes fit before allocating anything for them."""
        if n < 0 or n * item_size > self.remaining:
            raise ProtocolError(
                f"{self.what}: {field} claims {n} items of {item_size} bytes, "
                f"only {self.remaining} bytes left"
            )
        return n

    def at(self, offset: int, what: str | None = None) -> Reader:
        """A reader for a pointer target: ``offset`` from the start of the body, to its end.

        Offset 0 is NULL in spice.proto; callers test for it before calling.
        """
        if not 0 < offset <= self._end:
            raise ProtocolError(
                f"{self.what}: {what or 'pointer'} offset {offset} outside body of {self._end}"
            )
        return Reader(self._data, offset, self._end, what or self.what)
