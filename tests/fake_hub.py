"""A local HTTP server that answers like the Hugging Face hub, for `personae models pull`.

`/{owner}/{repo}/resolve/{revision}/{file}` answers HEAD and GET with a 302 to a
CDN-like `/cdn/{id}` and the hub's LFS headers (`X-Linked-Etag`: the sha256,
`X-Linked-Size`); `/cdn/{id}` serves the bytes, honouring `Range: bytes=N-` with a
206 and `Content-Range`. Faults on demand: drop the connection after some bytes,
advertise a wrong sha256, ignore ranges. Real sockets on 127.0.0.1, a random port.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class FakeHub:
    files: dict[str, bytes] = field(default_factory=dict)  # "owner/repo/file" -> bytes
    # Bytes sent before the connection is cut, one entry per coming CDN GET.
    drops: list[int] = field(default_factory=list)
    wrong_sha256: bool = False
    honour_range: bool = True
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def add(self, repo: str, file: str, content: bytes) -> str:
        self.files[f"{repo}/{file}"] = content
        return hashlib.sha256(content).hexdigest()

    def cdn_gets(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET" and s.path.startswith("/cdn/")]


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)$")


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    keys = lambda: list(hub.files)  # noqa: E731 - the files may be added after start

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, *, body: bool) -> None:
            hub.seen.append(
                Seen(
                    self.command,
                    self.path,
                    self.headers.get("Range"),
                    self.headers.get("Authorization"),
                )
            )
            resolved = _RESOLVE.match(self.path)
            if resolved:
                return self._redirect(f"{resolved['repo']}/{resolved['file']}")
            if self.path.startswith("/cdn/"):
                return self._serve(int(self.path.removeprefix("/cdn/")), body=body)
            self._status(404)

        def _status(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _redirect(self, key: str) -> None:
            if key not in hub.files:
                return self._status(404)
            content = hub.files[key]
            sha = hashlib.sha256(content).hexdigest()
            if hub.wrong_sha256:
                sha = hashlib.sha256(content + b"!").hexdigest()
            self.send_response(302)
            self.send_header("Location", f"/cdn/{keys().index(key)}")
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(len(content)))
            self.send_header("ETag", f'"{sha}"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _serve(self, index: int, *, body: bool) -> None:
            content = hub.files[keys()[index]]
            start = 0
            wanted = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
            if wanted and hub.honour_range:
                start = int(wanted.group(1))
                self.send_response(206)
                self.send_header(
                    "Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}"
                )
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(content) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if not body:
                return
            rest = content[start:]
            if hub.drops:
                cut = hub.drops.pop(0)
                self.wfile.write(rest[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(rest)

    return Handler


@contextmanager
def serve_hub(hub: FakeHub) -> Iterator[FakeHub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
