"""`personae models pull` from a local server that answers like the Hugging Face hub:
the redirect, the LFS sha256, resume after a dropped connection, a wrong checksum,
a full disk, an unknown name, a missing file. Never the internet."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from fake_hub import FakeHub, serve_hub
from personae.cli import app
from personae.cli_models import TerminalProgress, model_option
from personae.errors import ModelNotPulled, UnknownModel
from personae.llm import catalogue

REPO = "someone/Tiny-GGUF"
FILE = "tiny-q4.gguf"
CONTENT = b"GGUF" + bytes(range(256)) * 4096  # ~1 MB: several chunks
QWEN = catalogue.find("qwen2.5-0.5b")


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with serve_hub(FakeHub()) as served:
        served.add(REPO, FILE, CONTENT)
        yield served


def _personae(
    hub: FakeHub, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERSONAE_", "HF_"))}
    env.update(PERSONAE_ENVIRONMENT="development", PERSONAE_HF_ENDPOINT=hub.url)
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip


def _target(data_dir: Path) -> Path:
    return data_dir / "models" / "hub" / REPO / FILE


def test_pull_follows_the_redirect_and_checks_the_hubs_sha256(hub: FakeHub, tmp_path: Path) -> None:
    result = _personae(hub, "models", "pull", f"hf:{REPO}/{FILE}", "--data-dir", str(tmp_path),
                       token="hf_secret")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == _target(tmp_path)
    assert _target(tmp_path).read_bytes() == CONTENT
    assert not list(_target(tmp_path).parent.glob("*.part"))
    resolve = [s for s in hub.seen if "/resolve/main/" in s.path]
    assert resolve and all(s.authorization == "Bearer hf_secret" for s in resolve)
    assert len(hub.cdn_gets()) == 1 and hub.cdn_gets()[0].range is None
    # Not a terminal: plain lines, no carriage-return bar.
    assert "100%" in result.stderr and "\r" not in result.stderr
    again = _personae(hub, "models", "pull", f"hf:{REPO}/{FILE}", "--data-dir", str(tmp_path))
    assert again.returncode == 0 and "already at" in again.stderr
    assert len(hub.cdn_gets()) == 1


def test_a_dropped_connection_is_resumed_within_the_same_run(hub: FakeHub, tmp_path: Path) -> None:
    hub.drops = [300_000]
    result = _personae(hub, "models", "pull", f"hf:{REPO}/{FILE}", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr
    first, second = hub.cdn_gets()
    assert first.range is None and second.range == "bytes=300000-"
    assert _target(tmp_path).read_bytes() == CONTENT


def test_a_pull_that_keeps_failing_keeps_its_part_and_the_next_run_resumes(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.drops = [200_000, 100_000, 100_000]  # every attempt of the first run
    failed = _personae(hub, "models", "pull", f"hf:{REPO}/{FILE}", "--data-dir", str(tmp_path))
    assert failed.returncode == 5
    assert "run the same `personae models pull` again to resume" in failed.stderr
    assert "Traceback" not in failed.stderr
    part = _target(tmp_path).with_name(FILE + ".part")
    assert part.stat().st_size == 400_000 and not _target(tmp_path).exists()
    assert [s.range for s in hub.cdn_gets()] == [None, "bytes=200000-", "bytes=300000-"]
    resumed = _personae(hub, "models", "pull", f"hf:{REPO}/{FILE}", "--data-dir", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at" in resumed.stderr
    assert hub.cdn_gets()[-1].range == "bytes=400000-"
    assert _target(tmp_path).read_bytes() == CONTENT and not part.exists()


def test_a_server_that_ignores_the_range_gives_the_whole_file_again(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.drops, hub.honour_range = [250_000], False
    result = _personae(hub, "models", "pull", f"hf:{REPO}/{FILE}", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert _target(tmp_path).read_bytes() == CONTENT


def test_a_wrong_checksum_fails_and_leaves_no_file(hub: FakeHub, tmp_path: Path) -> None:
    hub.wrong_sha256 = True
    result = _personae(hub, "models", "pull", f"hf:{REPO}/{FILE}", "--data-dir", str(tmp_path))
    assert result.returncode == 3
    assert "has sha256" in result.stderr and "was deleted" in result.stderr
    assert list(_target(tmp_path).parent.iterdir()) == []


def test_a_given_sha256_wins_over_the_hubs(hub: FakeHub, tmp_path: Path) -> None:
    wrong = "0" * 64
    result = _personae(hub, "models", "pull", f"hf:{REPO}/{FILE}", "--sha256", wrong,
                       "--data-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 3 and wrong in result.stderr
    bad = _personae(hub, "models", "pull", f"hf:{REPO}/{FILE}", "--sha256", "xyz",
                    "--data-dir", str(tmp_path))  # fmt: skip
    assert bad.returncode == 2 and "64 hexadecimal digits" in bad.stderr


@pytest.mark.parametrize(
    ("name", "code", "says"),
    [
        ("no-such-model", 2, "unknown model 'no-such-model': choose one of smollm2-135m"),
        ("hf:someone/Tiny-GGUF", 2, "is not hf:OWNER/REPO/FILE.gguf"),
        (f"hf:{REPO}/missing.gguf", 5, "the hub has no missing.gguf in someone/Tiny-GGUF"),
        ("hf:other/Repo/x.gguf", 5, "(404)"),
    ],
)
def test_unknown_names_and_missing_files_fail_in_one_line(
    hub: FakeHub, tmp_path: Path, name: str, code: int, says: str
) -> None:
    result = _personae(hub, "models", "pull", name, "--data-dir", str(tmp_path))
    assert result.returncode == code
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not hub.cdn_gets()


def test_no_free_space_stops_before_downloading(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONAE_HF_ENDPOINT", hub.url)
    monkeypatch.setattr("shutil.disk_usage", lambda path: SimpleNamespace(free=50_000_000))
    result = CliRunner().invoke(
        app, ["models", "pull", f"hf:{REPO}/{FILE}", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 4
    assert "has 50 MB free; the download needs 101 MB" in result.output
    assert "free some space" in result.output
    assert not hub.cdn_gets()


def test_a_catalogue_model_is_pulled_listed_and_resolved_for_serve(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.add(QWEN.repo, QWEN.file, CONTENT)
    listed = _personae(hub, "models", "list", "--data-dir", str(tmp_path))
    assert listed.returncode == 0
    assert "qwen2.5-0.5b" in listed.stdout and "Apache-2.0" in listed.stdout
    with pytest.raises(ModelNotPulled, match=r"personae models pull qwen2\.5-0\.5b"):
        model_option("qwen2.5-0.5b", tmp_path)
    pulled = _personae(hub, "models", "pull", "qwen2.5-0.5b", "--data-dir", str(tmp_path))
    assert pulled.returncode == 0, pulled.stderr
    assert "personae serve --model qwen2.5-0.5b" in pulled.stderr
    row = next(
        line
        for line in _personae(
            hub, "models", "list", "--data-dir", str(tmp_path)
        ).stdout.splitlines()
        if line.startswith("qwen2.5-0.5b ")
    )
    assert " yes " in row
    path = model_option("qwen2.5-0.5b", tmp_path)["model_path"]
    assert path.read_bytes() == CONTENT


def test_model_option_keeps_paths_and_urls_and_names_the_choices(tmp_path: Path) -> None:
    assert model_option("http://gpu:8080", tmp_path) == {"backend_url": "http://gpu:8080"}
    assert model_option("./mine.gguf", tmp_path) == {"model_path": Path("mine.gguf")}
    assert model_option("smollm2-135m", tmp_path) == {}  # the default: fetched on first start
    with pytest.raises(UnknownModel, match="personae models list"):
        model_option("gpt-5", tmp_path)
    with pytest.raises(ModelNotPulled, match=r"personae models pull hf:a/b/c\.gguf"):
        model_option("hf:a/b/c.gguf", tmp_path)


def test_serve_with_an_unpulled_catalogue_model_says_to_pull_it(
    hub: FakeHub, tmp_path: Path
) -> None:
    result = _personae(hub, "serve", "--model", "llama-3.2-3b", "--port", "0",
                       "--data-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: model 'llama-3.2-3b' is not pulled yet: run "
        "`personae models pull llama-3.2-3b` first (2.0 GB)"
    )


def test_backends_names_the_embedded_model_and_a_bigger_one(hub: FakeHub, tmp_path: Path) -> None:
    result = _personae(hub, "backends", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "SmolLM2-135M-Instruct (135M)" in result.stdout
    assert "a bigger model: a " in result.stdout and "personae models pull " in result.stdout


def test_the_progress_bar_redraws_on_a_terminal_and_prints_lines_elsewhere() -> None:
    bar = io.StringIO()
    progress = TerminalProgress(bar, tty=True)
    progress.start("a/b/c.gguf", 1000, 0)
    progress.advance(1000)
    progress.finish()
    assert "\r[" in bar.getvalue() and "100%" in bar.getvalue()
    plain = io.StringIO()
    progress = TerminalProgress(plain, tty=False)
    progress.start("a/b/c.gguf", 1000, 400)
    for done in range(400, 1001, 50):
        progress.advance(done)
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("resuming at")
    assert [line.split("%")[0] for line in lines[1:]] == ["40", "50", "60", "70", "80", "90", "100"]
