"""A local HTTP server that answers like an OpenAI-compatible audio server, for
`voice/openai_speech.py`.

`POST /v1/audio/speech` answers a tone as long as the text (a WAV file, or raw PCM
at 24 kHz for `response_format: pcm`, OpenAI's format), in the formats the server
is told it writes (`formats`; any other is a 400 as OpenAI words it); an unknown
voice is a 400, a wrong key a 401, both with OpenAI's error body.
`POST /v1/audio/transcriptions` reads the multipart form (kept in `seen`) and
answers `{"text": transcript}`. Faults, one per coming request: an HTTP status,
`drop` (the request read, the connection closed unanswered), `stall` (no answer
until the server stops), `trickle` (headers, then a byte every 50 ms), and
`answer_as` makes speech answer another content type (`audio/mpeg`). Real sockets
on 127.0.0.1, a random port, HTTP/1.1 with kept-alive connections.
"""

from __future__ import annotations

import io
import json
import math
import struct
import threading
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SPEECH_RATE = 24_000
SECONDS_PER_CHAR = 0.02
# What an MP3 answer starts with (an ID3 tag): not WAV, not PCM.
MP3_BYTES = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" * 64


@dataclass
class SeenRequest:
    path: str
    authorization: str | None
    json: dict[str, Any] | None = None
    fields: dict[str, str] = field(default_factory=dict)
    file: bytes = b""
    file_type: str = ""


@dataclass
class FakeAudioServer:
    voices: set[str] = field(default_factory=lambda: {"alloy", "nova"})
    formats: set[str] = field(default_factory=lambda: {"wav", "pcm", "mp3"})
    api_key: str | None = None
    # One per coming request: an HTTP status, "drop", "stall" or "trickle".
    faults: list[int | str] = field(default_factory=list)
    answer_as: str | None = None
    wav_channels: int = 1
    transcript: str = "hello there"
    transcript_language: str | None = None
    seen: list[SeenRequest] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)
    url: str = ""
    stopping: threading.Event = field(default_factory=threading.Event)


def tone(seconds: float, rate: int = SPEECH_RATE) -> bytes:
    """A 440 Hz tone as 16-bit PCM."""
    count = round(seconds * rate)
    samples = (int(8000 * math.sin(2 * math.pi * 440 * n / rate)) for n in range(count))
    return struct.pack(f"<{count}h", *samples)


def wav_of(pcm: bytes, rate: int, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        # The same sample in every channel.
        writer.writeframes(b"".join(pcm[i : i + 2] * channels for i in range(0, len(pcm), 2)))
    return buffer.getvalue()


def _error(message: str, kind: str = "invalid_request_error", code: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


def _handler(server: FakeAudioServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            server.connections.add(id(self.connection))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen = SeenRequest(self.path, self.headers.get("Authorization"))
            server.seen.append(seen)
            fault = server.faults.pop(0) if server.faults else None
            if fault == "drop":
                self.close_connection = True
                return
            if fault == "stall":
                server.stopping.wait()
                self.close_connection = True
                return
            if fault == "trickle":
                return self._trickle()
            if isinstance(fault, int):
                return self._send(fault, _error(f"simulated {fault}", "server_error"))
            if server.api_key and seen.authorization != f"Bearer {server.api_key}":
                message = "Incorrect API key provided: sk-wr**ng."
                return self._send(401, _error(message, code="invalid_api_key"))
            if self.path == "/v1/audio/speech":
                return self._speech(body, seen)
            if self.path == "/v1/audio/transcriptions":
                return self._transcription(body, seen)
            self._send(404, json.dumps({"detail": "Not Found"}).encode())

        def _speech(self, body: bytes, seen: SeenRequest) -> None:
            request = json.loads(body)
            seen.json = request
            if request["voice"] not in server.voices:
                return self._send(400, _error(f"Voice '{request['voice']}' not found"))
            wanted = request.get("response_format", "mp3")
            if wanted not in server.formats:
                message = (
                    f"Invalid response_format '{wanted}': use one of "
                    f"{', '.join(sorted(server.formats))}"
                )
                return self._send(400, _error(message))
            pcm = tone(len(request["input"]) * SECONDS_PER_CHAR / float(request.get("speed", 1)))
            if server.answer_as == "audio/mpeg" or wanted == "mp3":
                return self._send(200, MP3_BYTES, "audio/mpeg")
            if wanted == "pcm":
                return self._send(200, pcm, "audio/pcm")
            self._send(200, wav_of(pcm, SPEECH_RATE, server.wav_channels), "audio/wav")

        def _transcription(self, body: bytes, seen: SeenRequest) -> None:
            head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
            form = BytesParser(policy=HTTP).parsebytes(head + body)
            for part in form.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                if name == "file":
                    seen.file, seen.file_type = payload, part.get_content_type()
                else:
                    seen.fields[str(name)] = payload.decode()
            answer: dict[str, Any] = {"text": server.transcript}
            if server.transcript_language:
                answer["language"] = server.transcript_language
            self._send(200, json.dumps(answer).encode())

        def _trickle(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            while not server.stopping.wait(0.05):
                try:
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                except OSError:
                    break
            self.close_connection = True

        def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def serve_audio(server: FakeAudioServer) -> Iterator[FakeAudioServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
