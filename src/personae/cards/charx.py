"""CHARX: a zip with `card.json` at its root and the card's assets beside it.

Archives are read defensively: a cap on the number of files and on the bytes
they unpack to (counted while reading, not trusted from the headers), and no
path that could climb out of the archive. Two byte caps apply: what the archive
may unpack to at all (`archive_too_large`), and what one card may store
(`card_too_large`, every file counted, `card.json` too); reading stops at the
first chunk past the smaller, so a zip bomb is never unpacked further.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from personae.errors import ArchiveTooLarge, CardMissing, CardTooLarge, InvalidCard, PayloadTooLarge

CARD_PATH = "card.json"
MAX_FILES = 1000
MAX_PATH = 512  # the column that keeps it
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ArchiveFile:
    path: str
    data: bytes


def is_zip(data: bytes) -> bool:
    return data.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def _safe_path(name: str) -> str:
    """The member's path, refused when it is absolute or climbs out with `..`."""
    path = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or ":" in name or ".." in path.parts or "\x00" in name:
        raise InvalidCard(f"The archive holds a file with an unsafe path: {name!r}.")
    if len(name) > MAX_PATH:
        raise InvalidCard(f"The archive holds a path longer than {MAX_PATH} characters.")
    return str(path)


def _too_large(max_unpacked: int, max_card_bytes: int | None) -> PayloadTooLarge:
    """The refusal for an archive past the smaller of its two byte caps."""
    if max_card_bytes is not None and max_card_bytes <= max_unpacked:
        return CardTooLarge(
            f"The card's files unpack to more than {max_card_bytes} bytes "
            f"({max_card_bytes / 1_048_576:.1f} MiB), the most one card may store.",
            extra={"limit": max_card_bytes},
        )
    return ArchiveTooLarge(f"The archive unpacks to more than {max_unpacked} bytes.")


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, too_large: PayloadTooLarge
) -> bytes:
    """The member's bytes, unpacked a chunk at a time and given up at the first chunk
    past `budget`."""
    parts: list[bytes] = []
    size = 0
    with archive.open(info) as member:
        while chunk := member.read(_READ_CHUNK):
            size += len(chunk)
            if size > budget:
                raise too_large
            parts.append(chunk)
    return b"".join(parts)


def read_charx(
    data: bytes, *, max_unpacked: int, max_card_bytes: int | None = None
) -> tuple[bytes, list[ArchiveFile]]:
    """The raw `card.json` and every other file of the archive (directories left out).

    The bytes of every file together may be at most `max_unpacked` and, when given,
    `max_card_bytes` (what one card may store)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as error:
        raise InvalidCard(f"The CHARX archive is damaged: {error}.") from error
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) > MAX_FILES:
            raise ArchiveTooLarge(f"The archive holds more than {MAX_FILES} files.")
        cap = min(max_unpacked, max_card_bytes if max_card_bytes is not None else max_unpacked)
        too_large = _too_large(max_unpacked, max_card_bytes)
        if sum(info.file_size for info in members) > cap:
            raise too_large
        paths = [_safe_path(info.filename) for info in members]
        if CARD_PATH not in paths:
            raise CardMissing("The archive has no card.json at its root.")
        if len(set(paths)) != len(paths):
            raise InvalidCard("The archive holds two files with the same path.")
        card = b""
        files: list[ArchiveFile] = []
        remaining = cap
        for info, path in zip(members, paths, strict=True):
            try:
                content = _read_member(archive, info, remaining, too_large)
            except (
                zipfile.BadZipFile,
                RuntimeError,
                NotImplementedError,
                OSError,
                EOFError,
                zlib.error,
            ) as error:
                raise InvalidCard(f"{path}: cannot be unpacked ({error}).") from error
            remaining -= len(content)
            if path == CARD_PATH:
                card = content
            else:
                files.append(ArchiveFile(path, content))
    return card, files


def write_charx(card_json: bytes, files: list[ArchiveFile]) -> bytes:
    """A CHARX archive: card.json first, then the assets at their paths."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CARD_PATH, card_json)
        for item in files:
            archive.writestr(_safe_path(item.path), item.data)
    return buffer.getvalue()
