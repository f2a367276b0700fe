"""A call in the web app (docs/web.md, "Voice"; docs/voice.md, "Calls"), in Chromium
with a fake microphone: the Call button opens the panel and its WebSocket, the
microphone's espeak-ng speech goes out as 16 kHz PCM from the AudioWorklet, the
server's VAD and Whisper hear the turn, the SIMULATED backend answers with a script,
Piper speaks it back and the page plays it; the turn and the reply are the chat's.
Hang up ends the call cleanly. On a phone the panel's buttons are on screen and big.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser.helpers import (
    DESKTOP,
    PHONE,
    WebApp,
    microphone_browser,
    new_page,
    open_chat,
    public_character,
    register,
    server_messages,
    wait_until,
)
from personae.voice.base import voice_installed

ASKED = "Please tell me a story about the old lighthouse keeper."
STORY = [
    "It was a calm night at sea.",
    "The keeper climbed the stairs to light the lamp.",
    "Then he sat down with a cup of tea.",
]
# Chromium plays the microphone's file in a loop: a long quiet after the words keeps
# the test to one turn (a second saying would be a new turn, or a barge-in).
QUIET_BEFORE_S, QUIET_AFTER_S = 1.0, 60.0
needs_voice = pytest.mark.skipif(
    not voice_installed(), reason="the voice extra is missing: pip install -e '.[voice]'"
)


@pytest.fixture
def asked_wav(tmp_path: Path) -> Path:
    """ASKED said by espeak-ng as Whisper tiny.en hears it best (tests/voice/recordings.py:
    American voice, 130 words a minute), between stretches of silence."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: apt-get install -y espeak-ng")
    path = tmp_path / "asked.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(path), ASKED], check=True)
    with wave.open(str(path)) as audio:
        assert audio.getsampwidth() == 2 and audio.getnchannels() == 1
        rate, speech = audio.getframerate(), audio.readframes(audio.getnframes())
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        quiet = bytes(2 * int(QUIET_BEFORE_S * rate))
        audio.writeframes(quiet + speech + bytes(2 * int(QUIET_AFTER_S * rate)))
    return path


@pytest.fixture
async def call_browser(asked_wav: Path) -> AsyncIterator[Any]:
    async with microphone_browser(asked_wav) as launched:
        yield launched


@dataclass
class CallFrames:
    """What went over the page's call WebSocket, as Chromium saw it (Playwright's
    websocket events): the server's text frames (decoded), the byte length of each
    binary frame it sent after an `audio` frame, and the page's frames (the byte
    length of each binary one)."""

    received: list[dict[str, Any]] = field(default_factory=list)
    pcm_sizes: list[int] = field(default_factory=list)
    sent_sizes: list[int] = field(default_factory=list)
    sent_text: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def watch(self, page: Any) -> None:
        page.on("websocket", self._opened)

    def _opened(self, socket: Any) -> None:
        if not socket.url.endswith("/call"):
            return
        socket.on("framereceived", self._received)
        socket.on("framesent", self._sent)
        socket.on("close", self._closed)

    def _closed(self, _socket: Any) -> None:
        self.closed = True
        self._changed.set()

    def _received(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            self.pcm_sizes.append(len(payload))
        else:
            self.received.append(json.loads(payload))
        self._changed.set()

    def _sent(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            self.sent_sizes.append(len(payload))
        else:
            self.sent_text.append(json.loads(payload))
        self._changed.set()

    async def wait(self, done: Callable[[], bool], timeout_s: float = 15.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not done():
                self._changed.clear()
                await self._changed.wait()

    def types(self) -> list[str]:
        return [frame["type"] for frame in self.received]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.received if frame["type"] == kind]


async def arm_script(web: WebApp, text: str) -> None:
    """The SIMULATED backend's next reply says `text`, word by word."""
    async with httpx.AsyncClient(base_url=web.backend_url) as backend:
        armed = await backend.post(
            "/simulation/faults", json={"mode": "script", "text": text, "count": 1}
        )
        armed.raise_for_status()


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


async def panel_reaches(page: Any, state: str, timeout_s: float = 30.0) -> None:
    await wait_until(
        page, f"document.querySelector('.call-panel')?.dataset.state === '{state}'", timeout_s
    )


async def start_call(page: Any, web: WebApp, character: dict[str, Any], story: str) -> Any:
    """Sign up, open a chat with `character`, arm the reply `story`, press Call: the
    panel, once it listens."""
    await register(page, "caller")
    await open_chat(page, character["id"])
    await arm_script(web, story)
    await page.get_by_role("button", name=f"Call {character['name']}").click()
    panel = page.get_by_role("dialog", name=f"Call with {character['name']}")
    await panel.wait_for()
    await panel_reaches(page, "listening")
    return panel


@needs_voice
async def test_a_call_hears_the_microphone_and_speaks_the_reply(
    call_browser: Any, start_web: Any, voice_models_dir: Path
) -> None:
    async with start_web(voice_dir=voice_models_dir, max_reply_tokens=200) as web:
        character = await public_character(web)
        page = await new_page(call_browser, web, DESKTOP)
        frames = CallFrames()
        frames.watch(page)
        panel = await start_call(page, web, character, " ".join(STORY))
        # Playwright reports frames apart from the page's own drawing: wait for them.
        await frames.wait(lambda: len(frames.received) >= 2 and bool(frames.sent_text))
        assert frames.types()[:2] == ["ready", "listening"], frames.received
        assert frames.sent_text[0] == {"type": "start", "sample_rate": 16_000}

        # The microphone's words go out (40 ms frames of 16 kHz PCM16), are heard and
        # sent: the transcript is shown.
        heard = panel.locator(".call-you")
        await heard.wait_for(timeout=40_000)
        assert len(frames.sent_sizes) >= 50 and set(frames.sent_sizes) == {1280}, frames.sent_sizes
        said = (await heard.locator("span").text_content()) or ""
        assert len(words(ASKED) & words(said)) >= len(words(ASKED)) * 3 // 4, said

        # The reply's sentences arrive as audio frames, each with its PCM, and play.
        await panel_reaches(page, "speaking")
        await panel.locator(".call-reply").wait_for()
        await panel_reaches(page, "listening", 40)
        await frames.wait(
            lambda: (
                bool(frames.of_type("reply_done"))
                and len(frames.pcm_sizes) == len(frames.of_type("audio"))
            )
        )
        clips = frames.of_type("audio")
        assert [clip["text"] for clip in clips] == STORY, frames.received
        assert frames.pcm_sizes == [clip["bytes"] for clip in clips]
        for clip in clips:
            assert clip["bytes"] / 2 / clip["sample_rate"] > 0.8  # a sentence, not a click
        assert (await panel.locator(".call-reply span").text_content()) == " ".join(STORY)
        done = frames.of_type("reply_done")
        assert len(done) == 1 and done[0]["status"] == "complete", frames.received
        assert not frames.of_type("error") and not frames.of_type("refused"), frames.received

        # The turn and the reply are the chat's, as if typed.
        transcript = frames.of_type("transcript")[0]
        messages = {message["id"]: message for message in await server_messages(page)}
        sent = messages[transcript["message_id"]]
        assert sent["role"] == "user" and sent["content"] == transcript["text"] == said
        assert sent["client_id"].startswith("call-")
        reply = messages[frames.of_type("reply")[0]["message_id"]]
        assert reply["content"] == " ".join(STORY) and reply["status"] == "complete"

        # Hang up: the page says `end` and closes the socket; the panel is gone.
        await panel.get_by_role("button", name="Hang up").click()
        await panel.wait_for(state="detached")
        await frames.wait(lambda: frames.closed)
        assert frames.sent_text[-1] == {"type": "end"}, frames.sent_text
        assert frames.types()[-1] == "listening", frames.received  # nothing after: no error
        assert page.js_errors == []


@needs_voice
async def test_the_call_panel_on_a_phone(
    call_browser: Any, start_web: Any, voice_models_dir: Path
) -> None:
    """A phone's screen holds the panel and its big buttons; Interrupt silences the
    character (a long reply, still being spoken) and the call listens again."""
    # Four words a second: the reply is still being written when Interrupt is pressed.
    async with start_web(
        voice_dir=voice_models_dir, max_reply_tokens=200, tokens_per_second=4
    ) as web:
        character = await public_character(web)
        page = await new_page(call_browser, web, PHONE)
        frames = CallFrames()
        frames.watch(page)
        panel = await start_call(page, web, character, " ".join(STORY * 3))
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        hang_up = panel.get_by_role("button", name="Hang up")
        await on_screen_and_big(hang_up)
        assert await panel.get_by_role("button", name="Interrupt").is_hidden()

        await panel_reaches(page, "speaking", 45)
        interrupt = panel.get_by_role("button", name="Interrupt")
        await on_screen_and_big(interrupt)
        await on_screen_and_big(hang_up)
        await interrupt.click()
        await panel_reaches(page, "listening")
        await frames.wait(lambda: {"type": "interrupt"} in frames.sent_text)
        reply_id = frames.of_type("reply")[0]["message_id"]
        await frames.wait(lambda: bool(frames.of_type("interrupted")))
        assert frames.of_type("interrupted")[0]["message_id"] == reply_id
        assert not frames.of_type("reply_done"), frames.received
        # The reply is stopped through the stop path: it keeps what was written.
        chat_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        await wait_until(
            page,
            f"fetch('/api/v1/chats/{chat_id}/messages?limit=200').then((r) => r.json())"
            f".then((b) => b.items.some((m) => m.id === '{reply_id}' && m.status === 'stopped'))",
        )
        await hang_up.click()
        await panel.wait_for(state="detached")
        await frames.wait(lambda: frames.closed)
        assert page.js_errors == []


async def on_screen_and_big(button: Any) -> None:
    """Wholly inside the phone's screen, and at least 56 px tall (docs/web.md)."""
    box = await button.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
    assert box["height"] >= 56 and box["width"] >= 56, box
