"""A small PNG chunk reader and writer: enough to carry a card in `tEXt` chunks.

No image decoding happens here, so there is no decompression bomb to defuse:
pixel data is copied through untouched.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from personae.errors import InvalidPng, PngTooManyChunks

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_CHUNK = 2**31 - 1
# Far more than any real image has (a large one has a few hundred IDAT chunks);
# each chunk costs a CRC and an object, so a file of empty chunks is stopped early.
MAX_CHUNKS = 10_000
_TEXT_CHUNKS = frozenset({b"tEXt", b"iTXt", b"zTXt"})


@dataclass(frozen=True)
class Chunk:
    kind: bytes
    data: bytes


def is_png(data: bytes) -> bool:
    return data.startswith(SIGNATURE)


def read_chunks(data: bytes) -> list[Chunk]:
    """Every chunk up to IEND, checked: lengths, CRCs, IHDR first, IEND present, and at
    most `MAX_CHUNKS` of them (reading stops at the first one past the limit)."""
    if not is_png(data):
        raise InvalidPng("The file does not start with the PNG signature.")
    chunks: list[Chunk] = []
    offset = len(SIGNATURE)
    while True:
        if len(chunks) >= MAX_CHUNKS:
            raise PngTooManyChunks(
                f"The PNG has more than {MAX_CHUNKS} chunks; an image needs far fewer."
            )
        if offset + 8 > len(data):
            raise InvalidPng("The PNG ends before its IEND chunk: the file is truncated.")
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        end = offset + 8 + length + 4
        if length > _MAX_CHUNK or end > len(data):
            raise InvalidPng(
                f"Chunk {kind!r} at byte {offset} runs past the end: the file is truncated."
            )
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + body) != crc:
            raise InvalidPng(f"Chunk {kind!r} at byte {offset} fails its CRC check.")
        if not chunks and kind != b"IHDR":
            raise InvalidPng("The PNG does not begin with an IHDR chunk.")
        chunks.append(Chunk(kind, body))
        offset = end
        if kind == b"IEND":
            return chunks


def _text_entry(chunk: Chunk) -> tuple[str, str] | None:
    """(keyword, text) of a tEXt chunk or an uncompressed iTXt chunk; None otherwise."""
    keyword, separator, rest = chunk.data.partition(b"\x00")
    if not separator:
        return None
    name = keyword.decode("latin-1")
    if chunk.kind == b"tEXt":
        return name, rest.decode("latin-1")
    if chunk.kind == b"iTXt" and len(rest) >= 2 and rest[0] == 0:
        # compression flag 0, method, language tag \0, translated keyword \0, text
        parts = rest[2:].split(b"\x00", 2)
        if len(parts) == 3:
            return name, parts[2].decode("utf-8", errors="replace")
    return None


def text_chunks(data: bytes) -> dict[str, str]:
    """The PNG's text entries by keyword (the first one wins when a keyword repeats)."""
    found: dict[str, str] = {}
    for chunk in read_chunks(data):
        entry = _text_entry(chunk) if chunk.kind in _TEXT_CHUNKS else None
        if entry is not None and entry[0] not in found:
            found[entry[0]] = entry[1]
    return found


def _encode(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _keyword(chunk: Chunk) -> str | None:
    if chunk.kind not in _TEXT_CHUNKS:
        return None
    return chunk.data.partition(b"\x00")[0].decode("latin-1")


def write_chunks(chunks: Iterable[Chunk]) -> bytes:
    return SIGNATURE + b"".join(_encode(chunk.kind, chunk.data) for chunk in chunks)


def with_text(data: bytes, texts: Mapping[str, str], *, drop: Iterable[str] = ()) -> bytes:
    """The same image with `texts` as tEXt chunks before IEND.

    Any older text chunk with one of these keywords (or one named in `drop`) is
    removed, so a re-exported card never carries a stale copy of itself.
    """
    stale = set(texts) | set(drop)
    kept = [chunk for chunk in read_chunks(data) if _keyword(chunk) not in stale]
    new = [
        Chunk(b"tEXt", name.encode("latin-1") + b"\x00" + text.encode("latin-1"))
        for name, text in texts.items()
    ]
    return write_chunks([*kept[:-1], *new, kept[-1]])


def without_text(data: bytes, keywords: Iterable[str]) -> bytes:
    """The image with the named text chunks removed (the bare avatar of a card)."""
    names = set(keywords)
    return write_chunks(chunk for chunk in read_chunks(data) if _keyword(chunk) not in names)


def placeholder(seed: str, size: int = 64) -> bytes:
    """A small solid-colour PNG whose colour comes from `seed` (for cards without an image)."""
    digest = zlib.crc32(seed.encode("utf-8"))
    pixel = bytes([64 + (digest & 0x7F), 64 + ((digest >> 8) & 0x7F), 64 + ((digest >> 16) & 0x7F)])
    raw = (b"\x00" + pixel * size) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return write_chunks(
        [Chunk(b"IHDR", header), Chunk(b"IDAT", zlib.compress(raw, 9)), Chunk(b"IEND", b"")]
    )
