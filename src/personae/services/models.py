"""Which model answers, and what a bigger one from the catalogue would give (the admin
page; `personae backends` prints the same for the embedded model)."""

from __future__ import annotations

from dataclasses import dataclass

from personae.llm import catalogue
from personae.llm.backends import BackendSpec
from personae.llm.factory import configured_backends
from personae.llm.router import Router
from personae.settings import Settings

_EMBEDDED = "embedded"


@dataclass(frozen=True)
class AnsweringModel:
    backend: str
    model: str  # what the backend is asked for (the embedded model: its file's stem)
    label: str  # the catalogue's name for it, else `model`
    embedded: bool
    catalogue_name: str | None = None
    params: str | None = None


@dataclass(frozen=True)
class ModelSuggestion:
    name: str
    label: str
    params: str
    ram_gb: float
    size_bytes: int
    gives: str
    command: str
    text: str  # the whole advice in one sentence


@dataclass(frozen=True)
class ModelsView:
    answering: list[AnsweringModel]
    suggestion: ModelSuggestion | None
    machine_ram_gb: float | None


def _embedded_spec(settings: Settings) -> BackendSpec:
    path = settings.model_path or catalogue.local_path(catalogue.DEFAULT, settings.data_dir)
    return BackendSpec(name=_EMBEDDED, url="", model=path.stem)


def _answering(spec: BackendSpec) -> AnsweringModel:
    embedded = spec.name == _EMBEDDED
    entry = catalogue.by_file_name(spec.model) if embedded else None
    return AnsweringModel(
        backend=spec.name,
        model=spec.model,
        label=entry.label if entry else spec.model,
        embedded=embedded,
        catalogue_name=entry.name if entry else None,
        params=entry.params if entry else None,
    )


def models_view(router: Router, settings: Settings) -> ModelsView:
    """The backends this process routes to (an api process holds none: then those the
    settings configure, else the embedded model the workers run)."""
    specs = [backend.spec for backend in router.backends]
    specs = specs or configured_backends(settings) or [_embedded_spec(settings)]
    answering = [_answering(spec) for spec in specs]
    ram = catalogue.machine_ram_gb()
    # Advice only for the embedded model, when it is one of the catalogue's: a remote
    # server's size, or a file of one's own, is not known here.
    current = next((a for a in answering if a.embedded and a.catalogue_name), None)
    entry = catalogue.find(current.catalogue_name) if current and current.catalogue_name else None
    choice = catalogue.bigger_choice(entry, ram) if entry else None
    suggestion = None
    if entry is not None and choice is not None:
        suggestion = ModelSuggestion(
            name=choice.name,
            label=choice.label,
            params=choice.params,
            ram_gb=choice.ram_gb,
            size_bytes=choice.size_bytes,
            gives=choice.gives,
            command=f"personae models pull {choice.name}",
            text=f"{catalogue.describe(entry, entry.name)}: {catalogue.suggestion(entry, ram)}",
        )
    return ModelsView(answering=answering, suggestion=suggestion, machine_ram_gb=ram)
