"""Settings: documented, safe outside development, read from a TOML file and the environment."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from personae.errors import ConfigurationError
from personae.settings import Settings, ensure_secret_key, load_settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
STRONG_KEY = "k" * 16 + "0123456789abcdef"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test sets: no PERSONAE_* of the machine, no real data directory."""
    for name in os.environ:
        if name.startswith("PERSONAE_") and name[9:].lower() in Settings.model_fields:
            monkeypatch.delenv(name)
    monkeypatch.delenv("PERSONAE_CONFIG", raising=False)
    monkeypatch.setenv("PERSONAE_DATA_DIR", str(tmp_path / "data"))


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    missing = [name for name in Settings.model_fields if f"`PERSONAE_{name.upper()}`" not in text]
    assert missing == [], f"add these to docs/settings.md: {missing}"


@pytest.mark.parametrize("key", ["secret", "change-me", "short-key"])
def test_an_insecure_secret_key_is_refused_outside_development(key: str) -> None:
    with pytest.raises(ConfigurationError, match="PERSONAE_SECRET_KEY"):
        load_settings(environment="production", secret_key=key)
    assert load_settings(environment="development", secret_key=key).secret_key == key


def test_an_insecure_secret_key_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERSONAE_SECRET_KEY", "changeme")
    with pytest.raises(ConfigurationError):
        load_settings()
    monkeypatch.setenv("PERSONAE_SECRET_KEY", STRONG_KEY)
    assert load_settings().secret_key == STRONG_KEY


def test_an_unset_secret_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    key = ensure_secret_key(settings)
    assert len(key) >= 32
    assert ensure_secret_key(load_settings(data_dir=tmp_path / "data")) == key
    mode = stat.S_IMODE((tmp_path / "data" / "secret_key").stat().st_mode)
    assert mode == 0o600


def test_a_toml_file_named_by_personae_config_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "personae.toml"
    config.write_text('port = 9001\nlog_level = "debug"\nlogin_rate_per_ip = "5/minute"\n')
    monkeypatch.setenv("PERSONAE_CONFIG", str(config))
    settings = load_settings()
    assert (settings.port, settings.log_level, settings.login_rate_per_ip) == (
        9001,
        "debug",
        "5/minute",
    )


def test_the_environment_beats_the_toml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "personae.toml"
    config.write_text('port = 9001\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("PERSONAE_CONFIG", str(config))
    monkeypatch.setenv("PERSONAE_PORT", "9002")
    settings = load_settings()
    assert settings.port == 9002
    assert settings.host == "0.0.0.0"
    assert load_settings(port=9003).port == 9003  # and arguments beat both


def test_an_unknown_setting_in_the_toml_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "personae.toml"
    config.write_text("prot = 9001\n")
    monkeypatch.setenv("PERSONAE_CONFIG", str(config))
    with pytest.raises(ConfigurationError, match="prot"):
        load_settings()
