"""Header tables and field checks shared by the codecs.

A fixed header is declared once as rows of ``(name, struct format, default)`` in network
byte order (the dpkt habit); :class:`HeaderTable` derives both the packer and the
unpacker from those rows, so a field's size and position live in exactly one place.
Unpacking a short buffer raises :class:`DecodeError`, never ``struct.error``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Union

from ._errors import DecodeError

Field = tuple[str, str, Any]
BytesLike = Union[bytes, bytearray, memoryview]


class HeaderTable:
    """One fixed-size header: field names, formats and defaults, in wire order."""

    def __init__(self, layer: str, fields: Sequence[Field]) -> None:
        self.layer = layer
        self.names: tuple[str, ...] = tuple(name for name, _, _ in fields)
        self.defaults: dict[str, Any] = {name: default for name, _, default in fields}
        self.offsets: dict[str, int] = {}
        fmt = "!"
        for name, code, _ in fields:
            self.offsets[name] = struct.calcsize(fmt)
            fmt += code
        self._struct = struct.Struct(fmt)
        self.size = self._struct.size

    def pack(self, **values: Any) -> bytes:
        """Pack ``values`` (missing names take their default) into header bytes."""
        unknown = set(values).difference(self.names)
        if unknown:
            raise TypeError(f"{self.layer}: unknown header fields {sorted(unknown)}")
        row = [values.get(name, self.defaults[name]) for name in self.names]
        try:
            return self._struct.pack(*row)
        except struct.error as exc:
            raise ValueError(f"{self.layer}: cannot pack header: {exc}") from None

    def unpack(self, buf: bytes, offset: int = 0) -> dict[str, Any]:
        """Unpack the header at ``offset``; a short buffer is a :class:`DecodeError`."""
        have = len(buf) - offset
        if have < self.size:
            raise DecodeError(
                self.layer,
                offset,
                f"truncated header: needs {self.size} bytes, got {max(have, 0)}",
            )
        return dict(zip(self.names, self._struct.unpack_from(buf, offset)))


def as_bytes(layer: str, buf: object) -> bytes:
    """Accept any bytes-like decoder input; anything else is API misuse (TypeError)."""
    if isinstance(buf, bytes):
        return buf
    if isinstance(buf, (bytearray, memoryview)):
        return bytes(buf)
    raise TypeError(f"{layer}: expected bytes, not {type(buf).__name__}")


def check_uint(layer: str, name: str, value: object, bits: int) -> None:
    """Raise TypeError unless ``value`` is an int, ValueError unless it fits in ``bits``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{layer}: {name} must be an int, not {type(value).__name__}")
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{layer}: {name} {value} is out of range 0..{(1 << bits) - 1}")


def check_optional_uint(layer: str, name: str, value: object | None, bits: int) -> None:
    """Like :func:`check_uint`, but ``None`` (meaning "compute it") is allowed."""
    if value is not None:
        check_uint(layer, name, value, bits)


def frozen_bytes(obj: object, layer: str, name: str) -> None:
    """Normalise a bytes-like dataclass field of a frozen ``obj`` to ``bytes``."""
    value = getattr(obj, name)
    if isinstance(value, bytes):
        return
    if isinstance(value, (bytearray, memoryview)):
        # Frozen dataclasses need object.__setattr__; this runs once, at construction.
        object.__setattr__(obj, name, bytes(value))
        return
    raise TypeError(f"{layer}: {name} must be bytes, not {type(value).__name__}")
