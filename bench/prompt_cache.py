"""Time to first token over a 30-turn conversation, prompt cache on and off, side by side.

Runs the embedded model (SmolLM2-135M through xllamacpp, as `personae serve`
does) and replays one scripted conversation. Each turn is sent twice, in the
same run and on the same machine: once with llama.cpp's prompt cache
(`cache_prompt: true`, what Personae sends) on slot 0, once without it on slot
1, with the identical prompt. Both ratios of turn 30 to turn 1 are printed: with
the cache the next turn does not re-read the history, without it the cost grows
with the history.

    python bench/prompt_cache.py [--turns 30] [--data-dir DIR] [--smoke]

`--smoke` (CI) plays 3 turns: it checks that the script runs end to end and prints
its figures, too few turns for the ratios to mean anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from personae.llm.embedded import EmbeddedServer
from personae.llm.model_files import pull_default_model

SYSTEM = (
    "You are Bramble, a talking fox who keeps a tea shop in the woods. Stay in character and "
    "answer the traveller in two or three friendly sentences. Bramble is cheerful, chatty and a "
    "little vain about his tea blends; he knows every path in the forest and gossips about all "
    "of them."
)
TOPICS = [
    "the rain", "your best tea", "the old mill", "the river path", "the owl", "winter",
    "the market", "your glasses", "the bakery", "the fog", "a lost map", "the bridge",
    "honey", "the moon", "your cousin", "the festival", "mushrooms", "the lake", "a song",
    "the north road", "thunder", "the library", "a riddle", "the kettle", "snow", "the fair",
    "apples", "the lighthouse", "the wolf", "tomorrow",
]  # fmt: skip


async def _first_token_s(
    client: httpx.AsyncClient,
    messages: list[dict[str, str]],
    *,
    cache: bool,
    slot: int,
    max_tokens: int,
) -> tuple[float, str, int]:
    """Seconds to the first streamed token, the reply text, and the prompt's token count."""
    body: dict[str, Any] = {
        "messages": messages,
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "seed": 7,
        "cache_prompt": cache,
        "id_slot": slot,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    text = ""
    prompt_tokens = 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                prompt_tokens = int(event["usage"].get("prompt_tokens", 0))
            for choice in event.get("choices", []):
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece and first is None:
                    first = time.perf_counter() - started
                text += piece
    return (first if first is not None else time.perf_counter() - started), text, prompt_tokens


async def run(turns: int, data_dir: Path) -> None:
    model = pull_default_model(data_dir, progress=lambda line: print(f"# {line}"))
    server = await EmbeddedServer.start(model, context_length=4096, slots=2)
    # A new connection per request: the server may close an idle keep-alive one.
    headers = {"Authorization": f"Bearer {server.api_key}", "Connection": "close"}
    rows = []
    try:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=headers, timeout=300
        ) as client:
            # Warm both slots up (first-request allocations are not the cache's doing).
            for slot in (0, 1):
                warm = [{"role": "user", "content": "Hello."}]
                await _first_token_s(client, warm, cache=False, slot=slot, max_tokens=2)
            history: list[dict[str, str]] = [{"role": "system", "content": SYSTEM}]
            for turn in range(1, turns + 1):
                topic = TOPICS[(turn - 1) % len(TOPICS)]
                history.append({"role": "user", "content": f"Tell me about {topic}, Bramble."})
                cached_s, reply, prompt_tokens = await _first_token_s(
                    client, history, cache=True, slot=0, max_tokens=40
                )
                uncached_s, _, _ = await _first_token_s(
                    client, history, cache=False, slot=1, max_tokens=1
                )
                rows.append((turn, prompt_tokens, cached_s, uncached_s))
                history.append({"role": "assistant", "content": reply.strip() or "Hm."})
    finally:
        await server.stop()

    print(
        f"{'turn':>4} {'prompt tokens':>13} {'TTFT cache on (ms)':>19} {'TTFT cache off (ms)':>20}"
    )
    for turn, tokens, on, off in rows:
        print(f"{turn:>4} {tokens:>13} {on * 1000:>19.1f} {off * 1000:>20.1f}")
    # Turn 1 has no history; compare the last turn with it, and the medians of the ends
    # (single turns are noisy on a shared machine).
    first_on, first_off = rows[0][2], rows[0][3]
    last_on, last_off = rows[-1][2], rows[-1][3]
    head_on = statistics.median(r[2] for r in rows[:3])
    tail_on = statistics.median(r[2] for r in rows[-3:])
    head_off = statistics.median(r[3] for r in rows[:3])
    tail_off = statistics.median(r[3] for r in rows[-3:])
    print()
    print(f"turn {rows[-1][0]} / turn 1, cache on:  {last_on / first_on:.2f}")
    print(f"turn {rows[-1][0]} / turn 1, cache off: {last_off / first_off:.2f}")
    print(f"median of last 3 / first 3, cache on:  {tail_on / head_on:.2f}")
    print(f"median of last 3 / first 3, cache off: {tail_off / head_off:.2f}")
    print(f"cache off / cache on at turn {rows[-1][0]}: {last_off / last_on:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--data-dir", type=Path, default=Path.home() / ".cache" / "personae-test")
    parser.add_argument(
        "--smoke", action="store_true", help="3 turns, for CI (too few for the ratios)"
    )
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.turns = 3
    asyncio.run(run(arguments.turns, arguments.data_dir))


if __name__ == "__main__":
    main()
