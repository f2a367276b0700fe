"""The voices API on the real voice files: the list, the "hear it" sample, a voice per
character (kept in the card's extensions through export and import), and a server
with voice turned off."""

from __future__ import annotations

import json
import wave
from collections.abc import AsyncIterator, Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from conftest import Api, assert_problem
from personae.app import create_app
from personae.settings import Settings

PIPER = {"engine": "piper", "voice": "en_US-joe-medium"}
KOKORO_BLEND = {
    "engine": "kokoro",
    "voice": "jf_alpha",
    "speed": 1.2,
    "blend": [{"voice": "jm_kumo", "weight": 0.3}],
}


@pytest.fixture
async def voice_api(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> AsyncIterator[Api]:
    app = create_app(make_settings(voice_dir=voice_models_dir, speech_rate_per_user="4/minute"))
    async with app.router.lifespan_context(app):
        api = Api(app)
        yield api
        await api.aclose()


def _wav(data: bytes) -> tuple[int, float]:
    with wave.open(BytesIO(data)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
        return reader.getframerate(), reader.getnframes() / reader.getframerate()


async def test_the_voices_list_names_engines_voices_and_the_default(voice_api: Api) -> None:
    user = await voice_api.user()
    answer = await user.get("/api/v1/voices")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["installed"] is True and body["transcription"] is True
    assert {(e["name"], e["ready"], e["blendable"]) for e in body["engines"]} == {
        ("piper", True, False),
        ("kokoro", True, True),
    }
    ids = {(voice["engine"], voice["id"]) for voice in body["voices"]}
    assert ("piper", "en_US-joe-medium") in ids and ("kokoro", "jm_kumo") in ids
    assert body["default"] == {**PIPER, "speed": 1.0, "blend": []}
    assert body["limits"]["audio_max_bytes"] > 0
    assert (await voice_api.client().get("/api/v1/voices")).status_code == 401


async def test_the_sample_is_a_wav_of_the_text_in_the_voice(voice_api: Api) -> None:
    user = await voice_api.user()
    text = "The lighthouse keeper lit the lamp as the storm rolled in from the sea."
    piper = await user.post("/api/v1/voices/sample", json={"voice": PIPER, "text": text})
    assert piper.status_code == 200, piper.text
    assert piper.headers["content-type"] == "audio/wav"
    rate, seconds = _wav(piper.content)
    assert rate == 22_050 and 2.0 < seconds < 9.0  # 14 words at a speaking pace
    kokoro = await user.post("/api/v1/voices/sample", json={"voice": KOKORO_BLEND})
    assert kokoro.status_code == 200, kokoro.text
    rate, seconds = _wav(kokoro.content)
    assert rate == 24_000 and 1.5 < seconds < 10.0  # the greeting
    # Bad choices, each refused with what is wrong.
    for voice, code in (
        ({"engine": "piper", "voice": "nobody"}, "unknown_voice"),
        ({"engine": "festival", "voice": "kal"}, "unknown_voice"),
        ({**PIPER, "blend": [{"voice": "en_US-joe-medium", "weight": 0.2}]}, "unknown_voice"),
        ({**KOKORO_BLEND, "blend": [{"voice": "jm_kumo", "weight": 0.6}] * 2}, "validation_error"),
        ({**PIPER, "speed": 3.0}, "validation_error"),
        ({**PIPER, "blend": [{"voice": "a", "weight": 0.1}] * 4}, "validation_error"),
        ({"engine": "piper"}, "validation_error"),
    ):
        refused = await user.post("/api/v1/voices/sample", json={"voice": voice})
        assert_problem(refused, 422, code)
    long = await user.post("/api/v1/voices/sample", json={"voice": PIPER, "text": "a" * 301})
    assert_problem(long, 422, "validation_error")
    # Two samples so far, of the four a minute this test allows: two more, then 429.
    for _ in range(2):
        assert (await user.post("/api/v1/voices/sample", json={"voice": PIPER})).status_code == 200
    assert_problem(
        await user.post("/api/v1/voices/sample", json={"voice": PIPER}), 429, "rate_limited"
    )


async def test_a_character_keeps_its_voice_through_edits_and_its_card(voice_api: Api) -> None:
    user = await voice_api.user()
    made = await user.post("/api/v1/characters", json={"name": "Kumo", "voice": KOKORO_BLEND})
    assert made.status_code == 201, made.text
    character: dict[str, Any] = made.json()
    assert character["voice"] == KOKORO_BLEND
    assert character["extensions"]["personae"]["voice"] == KOKORO_BLEND
    path = f"/api/v1/characters/{character['id']}"
    # New extensions without a voice keep the voice; other extensions are kept as sent.
    kept = await user.patch(path, json={"extensions": {"talkativeness": "0.4"}})
    assert kept.json()["voice"] == KOKORO_BLEND
    assert kept.json()["extensions"]["talkativeness"] == "0.4"
    changed = await user.patch(path, json={"voice": PIPER})
    assert changed.json()["voice"] == {**PIPER, "speed": 1.0, "blend": []}
    assert_problem(
        await user.patch(path, json={"voice": {"engine": "piper", "voice": "x"}}),
        422,
        "unknown_voice",
    )
    assert_problem(
        await user.post("/api/v1/characters", json={"name": "B", "voice": {**PIPER, "speed": 0}}),
        422,
        "validation_error",
    )
    await user.patch(path, json={"voice": KOKORO_BLEND})
    # The card carries it, and a character imported from the card speaks with it.
    for spec in ("v2", "v3"):
        card = await user.get(f"{path}/card.json", params={"spec": spec})
        assert card.status_code == 200
        assert card.json()["data"]["extensions"]["personae"]["voice"] == KOKORO_BLEND
        imported = await user.post(
            "/api/v1/characters/import", files={"file": ("kumo.json", card.content)}
        )
        assert imported.status_code == 201, imported.text
        assert imported.json()["voice"] == KOKORO_BLEND
    png = await user.get(f"{path}/card.png")
    imported = await user.post("/api/v1/characters/import", files={"file": ("k.png", png.content)})
    assert imported.json()["voice"] == KOKORO_BLEND
    # null: back to the server's default voice, and gone from the extensions.
    cleared = await user.patch(path, json={"voice": None})
    assert cleared.json()["voice"] is None
    assert "personae" not in cleared.json()["extensions"]
    assert cleared.json()["extensions"]["talkativeness"] == "0.4"


async def test_a_card_from_elsewhere_with_a_voice_this_server_lacks_still_imports(
    voice_api: Api,
) -> None:
    user = await voice_api.user()
    card = {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": "Far",
            "first_mes": "Hi",
            "extensions": {"personae": {"voice": {"engine": "openai", "voice": "nova"}}},
        },
    }
    imported = await user.post(
        "/api/v1/characters/import", files={"file": ("far.json", json.dumps(card).encode())}
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["voice"]["voice"] == "nova"  # kept; the default speaks meanwhile


async def test_with_voice_off_the_list_is_empty_and_every_voice_route_is_501(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    app = create_app(make_settings(voice="off", voice_dir=voice_models_dir))
    async with app.router.lifespan_context(app):
        api = Api(app)
        user = await api.user()
        body = (await user.get("/api/v1/voices")).json()
        assert body["installed"] is False
        assert body["engines"] == [] and body["voices"] == [] and body["default"] is None
        for method, path, payload in (
            ("POST", "/api/v1/voices/sample", {"voice": PIPER}),
            ("POST", "/api/v1/messages/any/speech", None),
            ("GET", "/api/v1/messages/any/speech", None),
            ("GET", "/api/v1/messages/any/speech/0", None),
            ("POST", "/api/v1/characters", {"name": "V", "voice": PIPER}),
        ):
            answer = await user.request(method, path, json=payload)
            assert_problem(answer, 501, "voice_not_installed")
        # A character without a voice is made as ever.
        assert (await user.post("/api/v1/characters", json={"name": "V"})).status_code == 201
        await api.aclose()


async def test_without_the_voice_files_speech_says_which_files_are_missing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    app = create_app(make_settings(voice_dir=tmp_path / "no-voices"))
    async with app.router.lifespan_context(app):
        api = Api(app)
        user = await api.user()
        body = (await user.get("/api/v1/voices")).json()
        assert body["installed"] is True and body["voices"] == []
        assert {engine["ready"] for engine in body["engines"]} == {False}
        missing = await user.post("/api/v1/voices/sample", json={"voice": PIPER})
        assert_problem(missing, 422, "unknown_voice")  # no engine with files to choose
        made = await user.post(
            "/api/v1/characters", json={"name": "Q", "first_message": "Hello there."}
        )
        chat = await user.post("/api/v1/chats", json={"character_id": made.json()["id"]})
        messages = await user.get(f"/api/v1/chats/{chat.json()['id']}/messages")
        greeting = messages.json()["items"][0]
        assert greeting["role"] == "assistant"
        for method in ("POST", "GET"):
            answer = await user.request(method, f"/api/v1/messages/{greeting['id']}/speech")
            problem = assert_problem(answer, 503, "voice_files_missing")
            assert "models pull piper-joe" in problem["detail"]
        await api.aclose()
