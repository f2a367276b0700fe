"""Download one GGUF file from Hugging Face: resumable, checked, never half-written.

`GET {endpoint}/{repo}/resolve/{revision}/{file}` answers with a redirect to a CDN
(followed). A HEAD first, without following, reads the file's size and sha256 from
the hub's LFS headers (`X-Linked-Size`, `X-Linked-Etag`: an LFS file's ETag is its
sha256, as huggingface_hub reads it). The bytes grow in `<file>.part`; a request
with `Range: bytes=N-` continues it, both after a connection drops within a run
(`attempts` times) and at the next `personae models pull` (the part file stays).
The complete file is checked against the sha256 (the catalogue's, else the hub's)
and only then renamed into place; a wrong one deletes the part file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from personae.errors import (
    ModelChecksumMismatch,
    ModelDownloadFailed,
    ModelFileError,
    NotEnoughDiskSpace,
)
from personae.llm.catalogue import human_size
from personae.llm.model_files import remember_sha256

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK_BYTES = 1 << 20
# Free space kept beyond the file itself: the database and logs share the disk.
_SPARE_BYTES = 100_000_000
_RETRY_PAUSE_S = 1.0
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class _DiskUsage(Protocol):
    @property
    def free(self) -> int: ...


DiskUsage = Callable[[Path], _DiskUsage]


class Progress(Protocol):
    def start(self, label: str, total: int | None, done: int) -> None: ...
    def advance(self, done: int) -> None: ...
    def finish(self) -> None: ...
    def note(self, line: str) -> None: ...


@dataclass(frozen=True)
class HubRequest:
    repo: str  # owner/name
    file: str
    revision: str = "main"
    sha256: str | None = None  # expected; None: the hub's LFS sha256


@dataclass(frozen=True)
class _Remote:
    size: int | None
    sha256: str | None


def resolve_url(endpoint: str, request: HubRequest) -> str:
    return f"{endpoint.rstrip('/')}/{request.repo}/resolve/{request.revision}/{request.file}"


def download(
    request: HubRequest,
    target: Path,
    *,
    endpoint: str,
    token: str | None,
    progress: Progress,
    attempts: int = 3,
    retry_pause_s: float = _RETRY_PAUSE_S,
    disk_usage: DiskUsage | None = None,
) -> Path:
    """Fetch the file to `target` (see the module's docstring) and return it."""
    url = resolve_url(endpoint, request)
    headers = {"User-Agent": "personae"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with httpx.Client(headers=headers, timeout=_TIMEOUT) as client:
        remote = _head(client, url, request)
        expected = _expected_sha256(request, remote)
        # Looked up at each call, so a test can stand in for the disk.
        _check_space(target.parent, remote.size, part, disk_usage or shutil.disk_usage)
        progress.start(f"{request.repo}/{request.file}", remote.size, _size(part))
        for attempt in range(1, attempts + 1):
            try:
                _fetch(client, url, part, remote.size, progress)
                break
            except (httpx.TransportError, _ShortRead) as error:
                if attempt == attempts:
                    progress.finish()
                    raise ModelDownloadFailed(
                        f"the download of {request.file} broke off ({_why(error)}) after "
                        f"{attempts} attempts; {_size(part)} bytes are kept in {part}: "
                        "run the same `personae models pull` again to resume"
                    ) from error
                progress.note(f"the connection dropped ({_why(error)}); resuming")
                time.sleep(retry_pause_s * attempt)
        progress.finish()
    _verify(part, expected, request)
    os.replace(part, target)
    remember_sha256(target, expected)
    return target


class _ShortRead(Exception):
    """The server ended a response before the bytes it announced."""


def _why(error: Exception) -> str:
    return str(error) or type(error).__name__


def _head(client: httpx.Client, url: str, request: HubRequest) -> _Remote:
    try:
        response = client.head(url, follow_redirects=False)
        if response.is_redirect and not response.headers.get("x-linked-etag"):
            # Not the hub's own LFS redirect: ask where it leads.
            response = client.head(url, follow_redirects=True)
    except httpx.TransportError as error:
        raise ModelDownloadFailed(
            f"cannot reach {url} ({_why(error)}); check the network or PERSONAE_HF_ENDPOINT"
        ) from error
    _raise_for_status(response.status_code, request)
    size_text = response.headers.get("x-linked-size") or response.headers.get("content-length")
    etag = (response.headers.get("x-linked-etag") or response.headers.get("etag") or "").strip()
    etag = etag.removeprefix("W/").strip('"').lower()
    return _Remote(
        size=int(size_text) if size_text and size_text.isdigit() else None,
        sha256=etag if _SHA256.match(etag) else None,
    )


def _raise_for_status(status: int, request: HubRequest) -> None:
    where = f"{request.file} in {request.repo} (revision {request.revision})"
    if status in (401, 403):
        raise ModelDownloadFailed(
            f"the hub refused {where} ({status}): the model may be gated; accept its "
            "license on huggingface.co and set HF_TOKEN to a token of yours"
        )
    if status == 404:
        raise ModelDownloadFailed(f"the hub has no {where} (404); check the name")
    if status >= 400:
        raise ModelDownloadFailed(f"the hub answered {status} for {where}; try again later")


def _expected_sha256(request: HubRequest, remote: _Remote) -> str:
    if request.sha256 is not None:
        return request.sha256.lower()
    if remote.sha256 is None:
        raise ModelFileError(
            f"the hub gave no sha256 for {request.file} (no LFS ETag), so it cannot be "
            "checked; pass --sha256 HEX from the model card"
        )
    return remote.sha256


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _check_space(
    folder: Path,
    total: int | None,
    part: Path,
    disk_usage: DiskUsage,
) -> None:
    if total is None:
        return
    needed = max(0, total - _size(part)) + _SPARE_BYTES
    free = disk_usage(folder).free
    if free < needed:
        raise NotEnoughDiskSpace(
            f"{folder} has {human_size(free)} free; the download needs {human_size(needed)} "
            f"(the rest of the file plus {human_size(_SPARE_BYTES)} to spare): free some "
            "space or set PERSONAE_DATA_DIR to a bigger disk"
        )


def _fetch(
    client: httpx.Client, url: str, part: Path, total: int | None, progress: Progress
) -> None:
    """Continue `part` up to `total` bytes (or the end of the file when unknown)."""
    offset = _size(part)
    if total is not None and offset >= total:
        return  # complete already; a too-long part fails the checksum and is deleted
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with client.stream("GET", url, headers=headers, follow_redirects=True) as response:
        if response.status_code == 416 and offset:
            part.unlink()  # the part does not fit the file any more: start over
            raise _ShortRead("the partial file did not match; starting over")
        if response.status_code not in (200, 206):
            response.read()
            _raise_for_status(response.status_code, HubRequest("?", url.rsplit("/", 1)[-1]))
        if response.status_code == 200 or not _starts_at(response, offset):
            offset = 0  # no range honoured: the body is the whole file
        _append(response, part, offset, progress)
    if total is not None and _size(part) < total:
        raise _ShortRead(f"{_size(part)} of {total} bytes")


def _starts_at(response: httpx.Response, offset: int) -> bool:
    match = re.match(r"bytes (\d+)-", response.headers.get("content-range", ""))
    return match is not None and int(match.group(1)) == offset


def _append(response: httpx.Response, part: Path, offset: int, progress: Progress) -> None:
    with part.open("r+b" if offset else "wb") as sink:
        sink.seek(offset)
        sink.truncate()
        done = offset
        try:
            # Unsized: every byte received is kept, even when the connection drops next.
            for chunk in response.iter_bytes():
                sink.write(chunk)
                done += len(chunk)
                progress.advance(done)
        finally:
            sink.flush()
            os.fsync(sink.fileno())


def _verify(part: Path, expected: str, request: HubRequest) -> None:
    digest = hashlib.sha256()
    with part.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        part.unlink()
        raise ModelChecksumMismatch(
            f"{request.file} from {request.repo} has sha256 {digest.hexdigest()}, expected "
            f"{expected}; the download was damaged or altered and was deleted: pull again"
        )
