"""The embedded model's prompt cache in RAM is bounded by a setting sized to the machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from personae.llm import embedded
from personae.llm.embedded import EmbeddedServer, default_cache_ram_mib
from personae.llm.factory import open_backends
from personae.settings import Settings


def test_the_default_bound_is_256_mib_or_a_64th_of_a_smaller_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(embedded, "_memory_mib", lambda: 24 * 1024)
    assert default_cache_ram_mib() == 256
    monkeypatch.setattr(embedded, "_memory_mib", lambda: 2 * 1024)
    assert default_cache_ram_mib() == 32
    monkeypatch.setattr(embedded, "_memory_mib", lambda: None)
    assert default_cache_ram_mib() == 256


def test_the_machine_memory_is_read() -> None:
    memory = embedded._memory_mib()
    assert memory is not None and memory > 0


async def test_the_server_is_started_with_the_bound_of_the_setting(
    model_path: Path, tmp_path: Path
) -> None:
    settings = Settings(
        environment="development",
        data_dir=tmp_path,
        model_path=model_path,
        embedded_cache_ram_mib=24,
        context_length=512,
    )
    [backend] = await open_backends(settings)
    try:
        server = backend.close.__self__  # type: ignore[attr-defined]
        assert isinstance(server, EmbeddedServer)
        assert server.cache_ram_mib == 24
        assert await backend.provider.health()
    finally:
        await backend.close()


async def test_unset_the_server_takes_the_default_bound_and_zero_keeps_none(
    model_path: Path,
) -> None:
    server = await EmbeddedServer.start(model_path, context_length=512)
    try:
        assert server.cache_ram_mib == default_cache_ram_mib()
    finally:
        await server.stop()
    server = await EmbeddedServer.start(model_path, context_length=512, cache_ram_mib=0)
    try:
        assert server.cache_ram_mib == 0
    finally:
        await server.stop()
