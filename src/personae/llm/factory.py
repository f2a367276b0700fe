"""Open the backends the settings describe: the embedded model, or a fleet."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from personae.llm.backends import BackendSpec, check_unique, parse_backend, read_backends_file
from personae.llm.embedded import start_embedded_provider
from personae.llm.model_files import (
    SHA256,
    default_model_path,
    pull_default_model,
    verify_model_file,
)
from personae.llm.openai_compat import OpenAICompatProvider
from personae.llm.router import Backend
from personae.settings import Settings

log = logging.getLogger("personae.llm")


def _progress(line: str) -> None:
    log.info(line)
    print(f"personae: {line}", flush=True)


def resolve_model_path(settings: Settings, *, pull: bool = True) -> Path:
    """The GGUF to run: the configured one, or the default, fetched on first start."""
    if settings.model_path is not None:
        verify_model_file(settings.model_path, None)
        return settings.model_path
    path = default_model_path(settings.data_dir)
    if not path.exists() and pull:
        _progress("no model is configured; fetching the embedded model (about 100 MB) once")
        return pull_default_model(settings.data_dir, progress=_progress)
    verify_model_file(path, SHA256)
    return path


def configured_backends(settings: Settings) -> list[BackendSpec]:
    """Remote backends from settings (`--backend`, PERSONAE_BACKENDS, the backends file)."""
    specs = [
        parse_backend(text, default_context=settings.context_length) for text in settings.backends
    ]
    if settings.backends_file is not None and settings.backends_file.exists():
        specs += read_backends_file(settings.backends_file, default_context=settings.context_length)
    if settings.backend_url:
        specs.append(
            BackendSpec(
                name="remote",
                url=settings.backend_url,
                model=settings.backend_model,
                slots=settings.backend_slots,
                context_length=settings.context_length,
                api_key=settings.backend_api_key,
            )
        )
    return check_unique(specs)


def open_backend(spec: BackendSpec, settings: Settings) -> Backend:
    provider = OpenAICompatProvider(
        spec.url,
        model=spec.model,
        api_key=spec.api_key,
        slots=spec.slots,
        context_length=spec.context_length,
        name=spec.name,
        first_token_timeout=settings.first_token_timeout_s,
        between_tokens_timeout=settings.between_tokens_timeout_s,
    )
    return Backend(spec=spec, provider=provider, close=provider.aclose)


async def open_backends(settings: Settings) -> list[Backend]:
    """The fleet when one is configured, else the embedded model (started here)."""
    specs = configured_backends(settings)
    if specs:
        return [open_backend(spec, settings) for spec in specs]
    model_path = await asyncio.to_thread(resolve_model_path, settings)
    server, provider = await start_embedded_provider(
        model_path,
        context_length=settings.context_length,
        slots=settings.embedded_slots,
        cache_ram_mib=settings.embedded_cache_ram_mib,
    )
    log.info("embedded model serving", extra={"model": model_path.name, "url": server.base_url})
    spec = BackendSpec(
        name="embedded",
        url=server.base_url,
        model=model_path.stem,
        slots=settings.embedded_slots,
        context_length=settings.context_length,
    )
    return [Backend(spec=spec, provider=provider, close=server.stop)]
