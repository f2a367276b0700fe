"""The deployment files name only commands and settings that exist, and nginx accepts
the shipped config.

deploy/ and docs/deploy.md are read by operators, not run by the suite (no Docker
engine, no cluster here), so what can rot silently is checked: every `personae ...`
invocation (in prose, unit files, and the argv lists of compose services and
Kubernetes containers, whose entrypoint is `personae`) against the typer app, with its
options; every PERSONAE_* variable against the Settings fields; the settings the
files set, parsed by Settings; and the nginx config by `nginx -t`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from personae.cli import app
from personae.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
# Not a field: the name of the TOML file the settings are read from (settings.py).
NON_FIELD_VARIABLES = {"PERSONAE_CONFIG"}
# A usable secret for parsing the shipped settings (theirs are placeholders).
SECRET = "k" * 48

# `personae <word>` at the start of a command: after whitespace, a quote, a backtick,
# `=` (ExecStart=) or `bin/` (/opt/personae/bin/personae); never inside a path or a name
# such as personae-api@ or /var/lib/personae, nor as the value of kubectl's `-n`.
_INVOCATION = re.compile(
    r"(?:^|(?<=[\s`'\"(=])|(?<=bin/))(?<!-n )(?<!--namespace )personae[ \t]+([^\n`|;&)]*)"
)
_VARIABLE = re.compile(r"\bPERSONAE_[A-Z0-9_]+")


def _text_files() -> list[Path]:
    files = [path for path in sorted(DEPLOY.rglob("*")) if path.is_file()]
    return [*files, DEPLOY_DOC]


def _is_group(command: Any) -> bool:
    # typer ships its own copy of click: a group is told by its subcommands, not its class.
    return isinstance(getattr(command, "commands", None), dict)


def _root_command() -> Any:
    command = typer.main.get_command(app)
    assert _is_group(command)
    return command


def _check_argv(argv: list[str], where: str) -> str:
    """Check one `personae` argv against the CLI; return the command's path."""
    command = _root_command()
    path: list[str] = []
    words = iter(argv)
    for word in words:
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            if name == "--help":
                continue
            options = {opt for param in command.params for opt in param.opts}
            assert name in options, f"{where}: `personae {' '.join(path)}` has no option {name}"
            continue
        if _is_group(command):
            assert word in command.commands, (
                f"{where}: `personae {' '.join([*path, word])}` is not a command "
                f"(choices: {', '.join(sorted(command.commands))})"
            )
            command = command.commands[word]
            path.append(word)
            continue
        # A value (an option's or an argument's): nothing to check against the CLI.
    assert path and not _is_group(command), f"{where}: `personae {' '.join(argv)}` names no command"
    return " ".join(path)


def _prose_invocations(path: Path) -> Iterator[list[str]]:
    for line in path.read_text().splitlines():
        for match in _INVOCATION.finditer(line):
            rest = match.group(1).replace("\\", " ")
            words: list[str] = []
            for word in rest.split():
                # Stop at what ends a shell command or starts prose around it.
                if not re.fullmatch(r"[A-Za-z0-9%._:/=,@+-]+", word) or word in ("&&", "||"):
                    break
                words.append(word)
            # Prose words after the command (`personae migrate once`) are values to
            # _check_argv; a leading word that is not lowercase is not a command at all.
            if words and re.fullmatch(r"[a-z][a-z-]*", words[0]):
                yield words


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _is_personae_service(service: dict[str, Any]) -> bool:
    build = service.get("build") or {}
    return build.get("dockerfile") == "deploy/Dockerfile" or str(
        service.get("image", "")
    ).startswith("personae")


def _yaml_invocations() -> Iterator[tuple[str, list[str]]]:
    """argv lists given to the image, whose entrypoint is `personae`."""
    for name, service in _compose()["services"].items():
        if _is_personae_service(service) and service.get("command"):
            yield f"compose.yaml service {name}", [str(word) for word in service["command"]]
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            for container in _containers(document):
                if "personae" in str(container.get("image", "")):
                    assert "command" not in container, f"{path.name}: keep the entrypoint"
                    yield f"{path.name} container {container['name']}", container["args"]


def _containers(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        return []
    spec = document.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get(
        "template", {}
    )
    pod = template.get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def test_every_personae_command_in_deploy_exists() -> None:
    found: set[str] = set()
    for path in _text_files():
        where = str(path.relative_to(ROOT))
        for argv in _prose_invocations(path):
            found.add(_check_argv(argv, where))
    for where, argv in _yaml_invocations():
        found.add(_check_argv(argv, where))
    # The roles and the migration are there, so the parsing above found something.
    assert {"serve", "worker", "migrate"} <= found, found


def test_the_commands_answer_help() -> None:
    """The commands the deployment runs start far enough to print their help."""
    for argv in (["serve", "--help"], ["worker", "--help"], ["migrate", "--help"]):
        result = subprocess.run(
            ["personae", *argv], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
    serve_help = subprocess.run(
        ["personae", "serve", "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "--role" in serve_help


def test_every_personae_variable_in_deploy_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    assert (
        'os.environ.get("PERSONAE_CONFIG")'
        in (ROOT / "src" / "personae" / "settings.py").read_text()
    )
    named: set[str] = set()
    for path in _text_files():
        for variable in _VARIABLE.findall(path.read_text()):
            named.add(variable)
            if variable in NON_FIELD_VARIABLES:
                continue
            field = variable.removeprefix("PERSONAE_").lower()
            assert field in fields, f"{path.relative_to(ROOT)}: {variable} is not a setting"
    shared = {
        "PERSONAE_DATABASE_URL",
        "PERSONAE_REDIS_URL",
        "PERSONAE_REDIS_PREFIX",
        "PERSONAE_SECRET_KEY",
        "PERSONAE_TRUSTED_PROXIES",
        "PERSONAE_AUTO_MIGRATE",
    }
    assert shared <= named


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?message} with nothing set in the environment."""

    def replace(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if name == "PERSONAE_SECRET_KEY":
            return SECRET
        return rest if operator == ":-" else "placeholder"

    return re.sub(r"\$\{([A-Z0-9_]+)(:-|:\?)([^}]*)\}", replace, value)


def _env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    return values


def _shipped_settings() -> dict[str, dict[str, str]]:
    compose = _compose()
    shipped = {
        f"compose.yaml {name}": {k: _interpolate(str(v)) for k, v in s["environment"].items()}
        for name, s in compose["services"].items()
        if _is_personae_service(s)
    }
    shipped["systemd/personae.env.example"] = _env_file(DEPLOY / "systemd/personae.env.example")
    config = list(yaml.safe_load_all((DEPLOY / "k8s" / "config.yaml").read_text()))
    shipped["k8s/config.yaml"] = next(
        d["data"] for d in config if d["metadata"]["name"] == "personae"
    )
    secret = yaml.safe_load((DEPLOY / "k8s" / "secret.example.yaml").read_text())
    shipped["k8s/config.yaml"].update(secret["stringData"])
    return shipped


def test_the_shipped_settings_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    for where, values in _shipped_settings().items():
        with monkeypatch.context() as patch:
            for key in [key for key in os.environ if key.startswith("PERSONAE_")]:
                patch.delenv(key)
            for key, value in values.items():
                patch.setenv(key, SECRET if key == "PERSONAE_SECRET_KEY" else value)
            settings = Settings()
        # Several processes: PostgreSQL, Redis, migrations by `personae migrate` only.
        assert settings.database_url and settings.database_url.startswith("postgresql"), where
        assert settings.redis_url, where
        assert not settings.auto_migrate, where
        assert settings.trusted_proxies, where
        assert settings.max_upload_bytes == _nginx_body_limit(), where


def _nginx_body_limit() -> int:
    match = re.search(r"^\s*client_max_body_size\s+(\d+)([kKmMgG]?);", _nginx_conf(), re.M)
    assert match, "nginx.conf sets client_max_body_size"
    unit = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(match.group(1)) * unit


def _nginx_conf() -> str:
    return (DEPLOY / "nginx.conf").read_text()


def test_nginx_streams_events_unbuffered() -> None:
    text = _nginx_conf()
    events = re.search(r"location ~ \^/api/v1/chats/\[\^/\]\+/events\$ \{(.*?)\n    \}", text, re.S)
    assert events, "a location for the chat event streams"
    body = events.group(1)
    assert "proxy_buffering off;" in body
    assert re.search(r"proxy_read_timeout\s+\d+h;", body)
    assert "proxy_set_header" not in body  # it would drop the server's headers below
    assert "proxy_http_version 1.1;" in text
    assert 'proxy_set_header Connection "";' in text
    assert "X-Forwarded-For" in text and "X-Forwarded-Proto" in text
    assert _nginx_body_limit() == Settings.model_fields["max_upload_bytes"].default


def test_nginx_accepts_the_shipped_config(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if nginx is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed: .ci/run installs it for this test")
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    # The shipped file is a site for nginx's http context (conf.d/), so it is wrapped in a
    # minimal main config. Its upstream names (compose services such as api-1) resolve only
    # on the compose network, and `nginx -t` refuses an upstream host it cannot resolve:
    # in the copy they become 127.0.0.1, ports kept. Everything else is tested as shipped.
    site = re.sub(
        r"(^\s*server\s+)(?![\d.]+:|\[)[A-Za-z0-9.-]+(:\d+)",
        r"\g<1>127.0.0.1\g<2>",
        _nginx_conf(),
        flags=re.M,
    )
    assert site.count("127.0.0.1") >= 2
    (tmp_path / "site.conf").write_text(site)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\n"
        f"error_log {tmp_path / 'error.log'};\n"
        "events {}\n"
        "http {\n"
        f"    access_log {tmp_path / 'access.log'};\n"
        f"{temp_paths}\n"
        f"    include {tmp_path / 'site.conf'};\n"
        "}\n"
    )
    result = subprocess.run(
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-c",
            str(tmp_path / "nginx.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
