"""Review of #20 (voice): regressions for the bugs found in review."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from personae.llm import model_files
from personae.settings import Settings
from personae.voice.factory import VoiceEngines


def test_a_voice_dir_that_cannot_keep_hashes_is_not_hashed_at_every_request(
    make_settings: Callable[..., Settings],
    voice_models_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read-only voice folder (files baked into an image, no `.sha256` sidecars
    kept): `is_pulled` runs on the event loop for GET /voices, every read-aloud and
    every call, and must not hash ~230 MB each time (it stalled the loop ~0.7 s)."""
    hashed: list[Path] = []
    real_sha256_of = model_files._sha256_of

    def counting(path: Path) -> str:
        hashed.append(path)
        return real_sha256_of(path)

    # The sidecars cannot be read or written (as in a read-only folder for a non-root user).
    monkeypatch.setattr(model_files, "_sidecar", lambda path: tmp_path / "absent" / path.name)
    monkeypatch.setattr(model_files, "_sha256_of", counting)
    engines = VoiceEngines(make_settings(voice_dir=voice_models_dir))

    def one_voices_request() -> None:  # what GET /voices asks of the engines
        assert engines.engine_ready("piper") and engines.engine_ready("kokoro")
        assert engines.transcription_ready()
        engines.voices()

    one_voices_request()
    first = len(hashed)
    assert first > 0
    for _ in range(3):
        one_voices_request()
    assert len(hashed) == first, f"hashed {len(hashed) - first} more files"
