"""Voice in the web app (docs/web.md, "Voice"), in Chromium with a fake microphone:
a reply read aloud (its clips fetched as audio/wav and played), a push-to-talk
message (Chromium's `--use-file-for-fake-audio-capture` plays speech made with
espeak-ng into the microphone, the server's whisper turns it into text), and no
voice control at all when the server's voice is off.

Reading aloud and transcribing use the real Piper and Whisper files (the
`voice_models_dir` fixture pulls them once); replies come from the SIMULATED backend.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from browser.helpers import (
    DESKTOP,
    microphone_browser,
    new_page,
    open_chat,
    public_character,
    register,
    wait_until,
)
from personae.voice.base import voice_installed

SPOKEN = "Please tell me a story about the sea and the lighthouse."
PAUSE_S = 1.5
needs_voice = pytest.mark.skipif(
    not voice_installed(), reason="the voice extra is missing: pip install -e '.[voice]'"
)


@pytest.fixture
def spoken_wav(tmp_path: Path) -> Path:
    """SPOKEN said by espeak-ng: a 16-bit PCM WAV, the fake microphone's sound."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: apt-get install -y espeak-ng")
    path = tmp_path / "spoken.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SPOKEN], check=True)
    with wave.open(str(path)) as audio:
        assert audio.getsampwidth() == 2 and audio.getnchannels() == 1
        rate, speech = audio.getframerate(), audio.readframes(audio.getnframes())
    # The microphone plays the file in a loop: a pause after it ends a turn (calls).
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(speech + bytes(2 * int(PAUSE_S * rate)))
    return path


def seconds_of(path: Path) -> float:
    with wave.open(str(path)) as audio:
        return audio.getnframes() / audio.getframerate()


@pytest.fixture
async def voice_browser(spoken_wav: Path) -> AsyncIterator[Any]:
    async with microphone_browser(spoken_wav) as launched:
        yield launched


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@needs_voice
async def test_a_reply_is_read_aloud(
    voice_browser: Any, start_web: Any, voice_models_dir: Path
) -> None:
    async with start_web(voice_dir=voice_models_dir) as web:
        character = await public_character(web)
        page = await new_page(voice_browser, web, DESKTOP)
        clips: list[Any] = []
        page.on(
            "response",
            lambda response: (
                clips.append(response)
                if re.search(r"/api/v1/messages/[^/]+/speech/\d+$", response.url)
                else None
            ),
        )
        await register(page, "reader")
        await open_chat(page, character["id"])
        # Voice is on: every control is there.
        for control in (".read-aloud-toggle", ".call-button", ".mic"):
            await page.locator(control).wait_for()
        greeting = page.locator(".msg-reply").first
        await greeting.get_by_role("button", name="Read aloud").click()
        # Playing: the state says so and the button is the stop button.
        await greeting.locator(".speech-state.speech-playing").wait_for()
        assert await greeting.locator(".speak").get_attribute("aria-pressed") == "true"
        # Read to its end: back to "Read aloud", each sentence fetched as WAV.
        await greeting.get_by_role("button", name="Read aloud").wait_for(timeout=60_000)
        assert len(clips) >= 2, [clip.url for clip in clips]  # the greeting has 3 sentences
        for clip in clips:
            assert clip.status == 200
            assert (await clip.header_value("content-type") or "").startswith("audio/wav")
        assert page.js_errors == []

        # Stop cuts a reading short.
        await greeting.get_by_role("button", name="Read aloud").click()
        await greeting.locator(".speech-state").wait_for()
        await greeting.get_by_role("button", name="Stop reading aloud").click()
        await greeting.get_by_role("button", name="Read aloud").wait_for()
        assert await greeting.locator(".speech-state").count() == 0

        # "Read replies aloud": a new reply is read as it comes.
        await page.get_by_role("button", name="Read replies aloud").click()
        before = len(clips)
        await page.locator("#composer").fill("Hello there!")
        await page.locator("#composer").press("Enter")
        reply = page.locator(".msg-reply").nth(1)
        await reply.locator(".speech-state").wait_for(timeout=60_000)
        reply_id = await reply.get_attribute("data-id")
        reading = f".msg-reply[data-id='{reply_id}'] .speech-state"
        await wait_until(page, f'document.querySelector("{reading}") === null', 60)
        assert any(reply_id in clip.url for clip in clips[before:])
        assert page.js_errors == []


@needs_voice
async def test_push_to_talk_fills_the_composer(
    voice_browser: Any, start_web: Any, voice_models_dir: Path, spoken_wav: Path
) -> None:
    async with start_web(voice_dir=voice_models_dir) as web:
        character = await public_character(web)
        page = await new_page(voice_browser, web, DESKTOP)
        await register(page, "talker")
        await open_chat(page, character["id"])
        mic = page.locator(".mic")
        box = await mic.bounding_box()
        assert box is not None
        # Hold the button while the fake microphone says the sentence (it loops: twice
        # its length holds one whole saying of it).
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.mouse.down()
        await wait_until(page, "document.querySelector('.mic').dataset.state === 'recording'")
        needed = int(2 * seconds_of(spoken_wav)) + 1
        await wait_until(
            page, f"Number(document.querySelector('.mic').dataset.seconds) >= {needed}", 30
        )
        await page.mouse.up()
        await wait_until(page, "document.querySelector('#composer').value.trim() !== ''", 60)
        heard = await page.locator("#composer").input_value()
        expected = set(words(SPOKEN))
        assert len(expected & set(words(heard))) >= len(expected) // 2, heard
        # The user may fix it; sent as typed text.
        await page.locator("#composer").press("End")
        await page.locator("#composer").type(" Thanks")
        await page.locator("#composer").press("Enter")
        await page.locator(".msg-user", has_text="Thanks").wait_for()
        # The composer keeps the text until the server has stored the message.
        await wait_until(page, "document.querySelector('#composer').value === ''", 60)
        assert page.js_errors == []


async def test_no_voice_controls_when_voice_is_off(browser: Any, start_web: Any) -> None:
    async with start_web(voice="off") as web:
        character = await public_character(web)
        page = await new_page(browser, web, DESKTOP)
        await register(page, "quiet")
        voices = await page.evaluate("fetch('/api/v1/voices').then((r) => r.json())")
        assert voices["installed"] is False
        await open_chat(page, character["id"])
        greeting = page.locator(".msg-reply").first
        await greeting.wait_for()
        for control in (".speak", ".mic", ".call-button", ".read-aloud-toggle"):
            assert await page.locator(control).count() == 0, control
        await greeting.get_by_role("button", name="More actions").click()
        await page.get_by_role("menuitem", name="Copy text").wait_for()
        assert await page.get_by_role("menuitem", name="Read aloud").count() == 0
        await page.goto("/create")
        await page.get_by_label("Name", exact=True).wait_for()
        assert await page.locator(".voice-field").count() == 0
        # and no error shown for it
        assert await page.locator(".error-box").count() == 0
        assert page.js_errors == []


@needs_voice
async def test_the_editor_picks_blends_and_plays_a_voice(
    browser: Any, start_web: Any, voice_models_dir: Path
) -> None:
    async with start_web(voice_dir=voice_models_dir) as web:
        page = await new_page(browser, web, DESKTOP)
        await register(page, "voicer")
        voices = await page.evaluate("fetch('/api/v1/voices').then((r) => r.json())")
        kokoro = [i for i, v in enumerate(voices["voices"]) if v["engine"] == "kokoro"]
        assert len(kokoro) >= 2, voices
        await page.goto("/create")
        await page.get_by_label("Name", exact=True).fill("Kumo")
        await page.get_by_label("Voice", exact=True).select_option(str(kokoro[0]))
        await page.get_by_label("Speed").fill("1.2")
        await page.get_by_role("button", name="Mix in another voice").click()
        await page.get_by_label("Share").fill("0.25")
        await page.get_by_role("button", name="Hear it").click()
        await wait_until(page, "document.querySelector('.voice-hear').dataset.state === 'playing'")
        await page.get_by_role("button", name="Create", exact=True).click()
        await page.get_by_role("heading", name="Kumo").wait_for()
        saved = await page.evaluate(
            "fetch(location.pathname.replace('/c/', '/api/v1/characters/'))"
            ".then((r) => r.json()).then((c) => c.voice)"
        )
        first = voices["voices"][kokoro[0]]
        assert saved["engine"] == "kokoro" and saved["voice"] == first["id"], saved
        assert saved["speed"] == 1.2 and len(saved["blend"]) == 1, saved
        assert saved["blend"][0]["weight"] == 0.25, saved
        # The editor shows it again; the server's default is a choice too.
        await page.get_by_role("link", name="Edit").click()
        picked = page.get_by_label("Voice", exact=True)
        assert await picked.input_value() == str(kokoro[0])
        assert await page.locator(".voice-blend-row").count() == 1
        await picked.select_option("")
        await page.get_by_role("button", name="Save").click()
        await page.get_by_role("heading", name="Kumo").wait_for()
        cleared = await page.evaluate(
            "fetch(location.pathname.replace('/c/', '/api/v1/characters/'))"
            ".then((r) => r.json()).then((c) => c.voice)"
        )
        assert cleared is None
        assert page.js_errors == []
