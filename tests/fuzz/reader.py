"""A tiny pure-Python stand-in for atheris' FuzzedDataProvider.

Targets must replay under pytest without atheris, so they take structure from the input
bytes with this reader. Every method is total: past the end it returns zeros / empty.
"""

from __future__ import annotations


class Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        """The next byte, 0 past the end."""
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self, size: int) -> int:
        """``size`` bytes big-endian (missing bytes count as 0)."""
        value = 0
        for _ in range(size):
            value = (value << 8) | self.byte()
        return value

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def chunk(self, max_len: int = 255) -> bytes:
        """A length-prefixed piece: one length byte (two when ``max_len`` > 255)."""
        n = self.uint(2 if max_len > 255 else 1) % (max_len + 1)
        return self.take(n)

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def splits(data: bytes, seed: int) -> list[bytes]:
    """``data`` cut at pseudo-random points chosen by ``seed`` (deterministic): the
    same input always replays the same way, and every seed gives a different cut."""
    out = []
    pos = 0
    state = seed * 2654435761 % 2**32 or 1
    while pos < len(data):
        state = (state * 1103515245 + 12345) % 2**31  # an LCG is plenty to pick cuts
        size = 1 + state % (1 + (len(data) - pos) // 2 if state & 1 else 17)
        out.append(data[pos : pos + size])
        pos += size
    return out
