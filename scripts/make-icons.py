"""Draw the web app's PNG icons with the standard library only (zlib, struct).

A purple square with a white speech bubble. Run: python scripts/make-icons.py
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src" / "personae" / "web" / "icons"
BACKGROUND = (75, 46, 131)
BUBBLE = (255, 255, 255)
DOT = (75, 46, 131)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _pixel(x: float, y: float) -> tuple[int, int, int]:
    # Coordinates from 0 to 1. An ellipse bubble with a tail, three dots inside.
    dx, dy = (x - 0.5) / 0.32, (y - 0.46) / 0.24
    inside = dx * dx + dy * dy <= 1.0
    tail = 0.3 <= x <= 0.42 and 0.62 <= y <= 0.78 and (x - 0.3) >= (y - 0.62) * 0.75
    if inside or tail:
        for cx in (0.38, 0.5, 0.62):
            if (x - cx) ** 2 + (y - 0.46) ** 2 <= 0.045**2:
                return DOT
        return BUBBLE
    return BACKGROUND


def png(size: int) -> bytes:
    rows = bytearray()
    for j in range(size):
        rows.append(0)
        for i in range(size):
            rows.extend(_pixel((i + 0.5) / size, (j + 0.5) / size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        (OUT / f"icon-{size}.png").write_bytes(png(size))
        print(OUT / f"icon-{size}.png")
