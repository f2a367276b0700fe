"""The backend registry: which inference servers exist, from settings and a file."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from personae.errors import ConfigurationError

BackendRole = Literal["primary", "fallback"]
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_KEYS = {"slots", "role", "model", "context", "priority", "key"}


@dataclass(frozen=True)
class BackendSpec:
    name: str
    url: str
    model: str = "default"
    slots: int = 4
    context_length: int = 2048
    priority: int = 0
    role: BackendRole = "primary"
    api_key: str | None = None


def parse_backend(text: str, *, default_context: int = 2048) -> BackendSpec:
    """`NAME=URL[,slots=N][,role=fallback][,model=M][,context=N][,priority=N][,key=K]`."""
    head, *options = [part.strip() for part in text.strip().split(",")]
    name, equals, url = head.partition("=")
    if not equals or not _NAME.match(name) or not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"backend '{text}' is not NAME=URL[,slots=N][,role=fallback][,model=M]"
        )
    spec = BackendSpec(name=name, url=url, context_length=default_context)
    for option in options:
        key, _, value = option.partition("=")
        if key not in _KEYS or not value:
            raise ConfigurationError(f"backend '{name}': unknown option '{option}'")
        try:
            if key == "slots":
                spec = replace(spec, slots=max(1, int(value)))
            elif key == "context":
                spec = replace(spec, context_length=int(value))
            elif key == "priority":
                spec = replace(spec, priority=int(value))
            elif key == "role":
                if value not in ("primary", "fallback"):
                    raise ValueError(value)
                spec = replace(spec, role=value)  # type: ignore[arg-type]
            elif key == "model":
                spec = replace(spec, model=value)
            else:
                spec = replace(spec, api_key=value)
        except ValueError as error:
            raise ConfigurationError(f"backend '{name}': bad value in '{option}'") from error
    return spec


def read_backends_file(path: Path, *, default_context: int = 2048) -> list[BackendSpec]:
    """One backend a line; blank lines and `#` comments are skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise ConfigurationError(f"cannot read the backends file {path}: {error}") from error
    return [
        parse_backend(line, default_context=default_context)
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    ]


def check_unique(specs: list[BackendSpec]) -> list[BackendSpec]:
    names = [spec.name for spec in specs]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ConfigurationError(f"backend names must be unique: {', '.join(sorted(duplicates))}")
    return specs
