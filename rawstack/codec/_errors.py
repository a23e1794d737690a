"""The codec layer's one error: what was wrong, in which layer, at which byte."""

from __future__ import annotations


class DecodeError(Exception):
    """Bytes that are not a valid packet of ``layer``.

    ``offset`` is the index, in the buffer handed to that layer's decoder, of the field
    that is wrong (or of the header that is short); ``reason`` says what is wrong.
    """

    def __init__(self, layer: str, offset: int, reason: str) -> None:
        # Passing the parts (not the message) to Exception keeps the error picklable,
        # which pytest-xdist and multiprocessing rely on.
        super().__init__(layer, offset, reason)
        self.layer = layer
        self.offset = offset
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.layer}: {self.reason} at offset {self.offset}"
