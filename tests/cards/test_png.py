"""The PNG chunk reader and writer: cards ride in tEXt chunks, damage is refused clearly."""

from __future__ import annotations

import struct
import zlib

import pytest

from personae.cards import png
from personae.errors import InvalidPng


def test_the_placeholder_is_a_valid_png_and_text_chunks_are_added_before_iend() -> None:
    image = png.placeholder("seed")
    tagged = png.with_text(image, {"chara": "abc", "ccv3": "def"})
    chunks = png.read_chunks(tagged)
    assert [c.kind for c in chunks] == [b"IHDR", b"IDAT", b"tEXt", b"tEXt", b"IEND"]
    assert png.text_chunks(tagged) == {"chara": "abc", "ccv3": "def"}


def test_writing_again_replaces_stale_chunks_and_keeps_the_others() -> None:
    image = png.with_text(png.placeholder("seed"), {"chara": "old", "Comment": "hello"})
    again = png.with_text(image, {"chara": "new", "ccv3": "v3"})
    assert png.text_chunks(again) == {"Comment": "hello", "chara": "new", "ccv3": "v3"}
    kinds = [c.kind for c in png.read_chunks(again)]
    assert kinds.count(b"tEXt") == 3


def test_without_text_strips_only_the_named_chunks() -> None:
    image = png.with_text(png.placeholder("seed"), {"chara": "x", "Comment": "keep"})
    assert png.text_chunks(png.without_text(image, ["chara", "ccv3"])) == {"Comment": "keep"}


def test_an_uncompressed_itxt_chunk_is_read() -> None:
    body = b"ccv3\x00\x00\x00en\x00\x00" + "héllo".encode()
    chunks = png.read_chunks(png.placeholder("x"))
    image = png.write_chunks([*chunks[:-1], png.Chunk(b"iTXt", body), chunks[-1]])
    assert png.text_chunks(image)["ccv3"] == "héllo"


@pytest.mark.parametrize("cut", [4, 20, 40, -1])
def test_a_truncated_png_is_refused(cut: int) -> None:
    image = png.with_text(png.placeholder("seed"), {"chara": "x" * 100})
    with pytest.raises(InvalidPng, match=r"truncated|signature"):
        png.text_chunks(image[:cut])


def test_a_bad_crc_is_refused() -> None:
    image = bytearray(png.placeholder("seed"))
    image[20] ^= 0xFF  # inside IHDR's data
    with pytest.raises(InvalidPng, match="CRC"):
        png.read_chunks(bytes(image))


def test_not_a_png_and_a_png_without_ihdr_are_refused() -> None:
    with pytest.raises(InvalidPng, match="signature"):
        png.read_chunks(b"GIF89a....")
    body = b"text"
    chunk = (
        struct.pack(">I", len(body))
        + b"tEXt"
        + body
        + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    )
    with pytest.raises(InvalidPng, match="IHDR"):
        png.read_chunks(png.SIGNATURE + chunk)
