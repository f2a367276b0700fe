"""CHARX archives are unpacked within caps, and never outside their own folder."""

from __future__ import annotations

import io
import zipfile

import pytest
from card_samples import V3_CARD, charx

from personae.cards.charx import MAX_FILES, ArchiveFile, read_charx, write_charx
from personae.errors import ArchiveTooLarge, CardMissing, InvalidCard


def test_an_archive_round_trips_card_and_files() -> None:
    data = write_charx(b'{"a": 1}', [ArchiveFile("assets/x.png", b"png"), ArchiveFile("y", b"")])
    card, files = read_charx(data, max_unpacked=1000)
    assert card == b'{"a": 1}'
    assert files == [ArchiveFile("assets/x.png", b"png"), ArchiveFile("y", b"")]


def test_the_unpacked_size_is_capped() -> None:
    archive = charx(V3_CARD, {"big.bin": b"\x00" * 50_000})
    assert len(archive) < 5_000
    with pytest.raises(ArchiveTooLarge):
        read_charx(archive, max_unpacked=10_000)


def test_too_many_files_are_refused() -> None:
    archive = charx(V3_CARD, {f"f{i}": b"" for i in range(MAX_FILES + 1)})
    with pytest.raises(ArchiveTooLarge, match="files"):
        read_charx(archive, max_unpacked=10**9)


@pytest.mark.parametrize("path", ["../up.txt", "/abs.txt", "a/../../b", "C:/x", "a\\..\\b"])
def test_paths_that_climb_out_are_refused(path: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("card.json", "{}")
        archive.writestr(zipfile.ZipInfo(path), b"x")
    with pytest.raises(InvalidCard, match="unsafe path"):
        read_charx(buffer.getvalue(), max_unpacked=10_000)


def test_a_damaged_archive_and_one_without_a_card_are_refused() -> None:
    with pytest.raises(InvalidCard, match="damaged"):
        read_charx(b"PK\x03\x04 not really a zip", max_unpacked=10_000)
    with pytest.raises(CardMissing):
        read_charx(charx(None, {"readme.txt": b"hi"}), max_unpacked=10_000)
