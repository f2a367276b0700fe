"""Which model answers and a bigger choice, as the admin API gives it."""

from __future__ import annotations

from personae.api.schemas.common import Output


class AnsweringModelPublic(Output):
    backend: str
    model: str
    label: str
    embedded: bool
    catalogue_name: str | None
    params: str | None


class ModelSuggestionPublic(Output):
    name: str
    label: str
    params: str
    ram_gb: float
    size_bytes: int
    gives: str
    command: str
    text: str


class ModelsPublic(Output):
    answering: list[AnsweringModelPublic]
    suggestion: ModelSuggestionPublic | None
    machine_ram_gb: float | None
