"""Card files: JSON, PNG (`ccv3` / `chara` text chunks) and CHARX, told apart by content."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from personae import strict_json
from personae.cards import png
from personae.cards.card import ParsedCard, read_card
from personae.cards.charx import ArchiveFile, is_zip, read_charx, write_charx
from personae.cards.lorebook import Lorebook, parse_lorebook_file
from personae.errors import CardMissing, InvalidCard, InvalidPng, UnsupportedCardFile

CARD_CHUNKS = ("ccv3", "chara")  # read in this order: V3 first
FileKind = Literal["json", "png", "charx"]


@dataclass(frozen=True)
class ImportedFile:
    kind: FileKind
    card: ParsedCard
    image: bytes | None  # a PNG card's image, without its card chunks
    files: list[ArchiveFile]  # a CHARX archive's assets


def decode_json(raw: bytes, what: str) -> Any:
    """JSON from UTF-8 bytes (a byte order mark is allowed), or a clear refusal: not
    JSON (`invalid_card`), too deep (`json_too_deep`), NaN or Infinity
    (`json_not_finite`)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidCard(f"{what} is not UTF-8 text.") from error
    try:
        return strict_json.loads(text, what)
    except json.JSONDecodeError as error:
        raise InvalidCard(f"{what} is not valid JSON: {error.msg} at {error.pos}.") from error


def _decode_chunk(keyword: str, text: str) -> Any:
    compact = "".join(text.split())
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidCard(f"The PNG's '{keyword}' chunk is not valid base64.") from error
    return decode_json(raw, f"The PNG's '{keyword}' chunk")


def _read_png(data: bytes) -> ImportedFile:
    texts = png.text_chunks(data)
    keyword = next((name for name in CARD_CHUNKS if name in texts), None)
    if keyword is None:
        raise CardMissing("The PNG has no character card in it (no 'ccv3' or 'chara' chunk).")
    card = read_card(_decode_chunk(keyword, texts[keyword]))
    return ImportedFile("png", card, png.without_text(data, CARD_CHUNKS), [])


def read_card_file(
    data: bytes, *, max_unpacked: int, max_card_bytes: int | None = None
) -> ImportedFile:
    """A card from the bytes of a JSON, PNG or CHARX file (the name is not trusted);
    a CHARX's files may unpack to `max_unpacked` bytes, and to `max_card_bytes`."""
    if png.is_png(data):
        return _read_png(data)
    if is_zip(data):
        card_json, files = read_charx(
            data, max_unpacked=max_unpacked, max_card_bytes=max_card_bytes
        )
        return ImportedFile("charx", read_card(decode_json(card_json, "card.json")), None, files)
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return ImportedFile("json", read_card(decode_json(data, "The file")), None, [])
    if not data:
        raise UnsupportedCardFile("The file is empty.")
    raise UnsupportedCardFile("The file is neither JSON, a PNG image nor a CHARX archive.")


def read_lorebook_file(data: bytes) -> Lorebook:
    """A standalone lorebook (`lorebook_v3` JSON)."""
    return parse_lorebook_file(decode_json(data, "The lorebook"))


def card_json(card: dict[str, Any]) -> bytes:
    """Always valid JSON, even for a card stored with NaN before such cards were refused."""
    return strict_json.dumps(card).encode("utf-8")


def card_png(image: bytes | None, *, v2: dict[str, Any], v3: dict[str, Any], seed: str) -> bytes:
    """The image (or a placeholder) carrying both cards: `chara` (V2) and `ccv3` (V3).

    An image this reader refuses (one stored before the chunk limit existed, say)
    gives way to the placeholder: the download must not fail on it.
    """
    chunks = {
        "chara": base64.b64encode(card_json(v2)).decode("ascii"),
        "ccv3": base64.b64encode(card_json(v3)).decode("ascii"),
    }
    if image is not None and png.is_png(image):
        try:
            return png.with_text(image, chunks)
        except InvalidPng:
            pass
    return png.with_text(png.placeholder(seed), chunks)


def card_charx(v3: dict[str, Any], files: list[ArchiveFile]) -> bytes:
    return write_charx(card_json(v3), files)
