"""The embedded model: llama.cpp's HTTP server inside this process (xllamacpp).

xllamacpp's `Server` loads the model and serves the OpenAI chat API on a port
from its own C++ threads, so the embedded model is driven by the same
`OpenAICompatProvider` as a remote fleet. It listens on loopback only and
requires a random API key, so no other local process can use it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import xllamacpp  # untyped: pyproject tells mypy to ignore its missing stubs

from personae.errors import ModelFileError
from personae.llm.model_files import verify_model_file
from personae.llm.openai_compat import OpenAICompatProvider

# llama.cpp log verbosity: 1 prints errors only (0 and below print nothing at all).
ERRORS_ONLY = 1
# Cap on llama.cpp's host-RAM prompt cache (its own default is 8 GiB), where idle
# slots' prompts are saved so a chat that comes back finds its prefix warm: the
# process grows by up to this much, then stays. SmolLM2-135M needs ~23 KB per
# cached token, so 256 MiB keeps ~11k tokens (5 full contexts). A smaller machine
# gets 1/64 of its memory.
DEFAULT_CACHE_RAM_MIB = 256
_CACHE_RAM_SHARE = 64
_CACHE_REUSE_MIN_TOKENS = 64
# glibc's M_MMAP_THRESHOLD, and the size from which a block gets its own mapping.
_M_MMAP_THRESHOLD = -3
_OWN_MAPPING_BYTES = 2**20
# How long `stop` waits for cut streams to leave their slots.
_IDLE_WAIT_S = 2.0
_IDLE_POLL_S = 0.05


def _usable_cpus() -> int:
    # The CPUs this process may run on (a container's limit), not the host's count.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _memory_mib() -> int | None:
    """The memory this process may use: a cgroup's limit when one is set, else the machine's."""
    limits = [
        Path("/sys/fs/cgroup/memory.max"),
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    ]
    for limit in limits:
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or a huge number: no limit
            return int(text) // 2**20
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError):
        return None


def default_cache_ram_mib() -> int:
    """The prompt cache's bound when no setting gives one: 256 MiB, less on a small machine."""
    memory = _memory_mib()
    if memory is None:
        return DEFAULT_CACHE_RAM_MIB
    return min(DEFAULT_CACHE_RAM_MIB, memory // _CACHE_RAM_SHARE)


def _return_large_blocks_to_the_system() -> None:
    """Give every block of 1 MiB or more its own mapping, unmapped when it is freed.

    llama.cpp's prompt cache copies slot states of several MB in and out. glibc
    raises its mmap threshold after the first such block is freed (up to 32 MiB),
    so later ones come from its heaps, where the holes they leave are seldom given
    back. Two 12-minute soaks side by side (bench/soak.py, a 256 MiB cache): with
    glibc's default the server peaked at 667 MiB and ended at 660 (+12% after
    warm-up); with the threshold fixed, 590 and 580 (+7%). An operator's
    MALLOC_MMAP_THRESHOLD_ wins.
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    name = ctypes.util.find_library("c")
    if name is None:
        return
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None)  # glibc's; musl has none
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _OWN_MAPPING_BYTES)


def default_threads() -> tuple[int, int]:
    """Return (generation threads, prompt threads): half the usable CPUs, at most 4 to generate.

    The other half is left to the web server and the database on the same
    machine. ggml's threads meet at barriers where they spin; when another
    process takes a CPU, the spinning ones stall the rest. Measured on 2 busy
    vCPUs: 1 thread generates 70-112 tokens/s, 2 threads 13-46; a cold
    1,369-token prompt takes 10.4 s with 1 thread, 20-25 s with 2. Generating one
    token of a 135M model is too little work to split over many threads anyway.
    """
    half = max(1, _usable_cpus() // 2)
    return min(4, half), half


def _server_params(model_path: Path, api_key: str, context_length: int, slots: int) -> Any:
    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the OS picks a free port; `listening_address` tells which
    params.api_keys = [api_key]  # /health stays open; everything else needs the key
    # llama.cpp splits n_ctx among the slots, so ask for one context per slot.
    params.n_ctx = context_length * slots
    params.n_parallel = slots
    params.cache_prompt = True
    # When old turns are cut, shift the KV of the kept turns (chunks of at least
    # 64 tokens) instead of recomputing them: measured 54 ms instead of 6.7 s for
    # a 1,000-token history whose first 8 turns went.
    params.n_cache_reuse = _CACHE_REUSE_MIN_TOKENS
    params.use_jinja = True  # the GGUF's own chat template
    params.ui = False
    return params


class EmbeddedServer:
    """A running xllamacpp server; build it with `EmbeddedServer.start`."""

    def __init__(
        self,
        server: Any,
        *,
        api_key: str,
        model_path: Path,
        context_length: int,
        slots: int,
        cache_ram_mib: int,
    ) -> None:
        self._server: Any = server
        self.base_url: str = server.listening_address
        self.api_key = api_key
        self.model_path = model_path
        self.context_length = context_length
        self.slots = slots
        self.cache_ram_mib = cache_ram_mib  # the bound llama.cpp was started with
        self._stop_callbacks: list[Callable[[], Awaitable[None]]] = []

    def __repr__(self) -> str:
        return f"EmbeddedServer(base_url={self.base_url!r}, model={self.model_path.name!r})"

    @classmethod
    async def start(
        cls,
        model_path: Path,
        *,
        context_length: int = 2048,
        slots: int = 1,
        threads: int | None = None,
        batch_threads: int | None = None,
        verbosity: int = ERRORS_ONLY,
        cache_ram_mib: int | None = None,
    ) -> EmbeddedServer:
        """Load the model and start serving on a free loopback port.

        `context_length` is per slot; `threads` generate tokens, `batch_threads`
        process prompts (see `default_threads`). The constructor holds the GIL while the
        model loads (~0.4 s for SmolLM2-135M), so the event loop pauses briefly
        even though the work runs in a thread. `cache_ram_mib` bounds the prompts kept
        in RAM (0: none kept; None: `default_cache_ram_mib()`).
        """
        verify_model_file(model_path, None)
        _return_large_blocks_to_the_system()
        api_key = secrets.token_urlsafe(32)
        params = _server_params(model_path, api_key, context_length, slots)
        default_generation, default_batch = default_threads()
        params.cpuparams.n_threads = threads or default_generation
        params.cpuparams_batch.n_threads = batch_threads or default_batch
        params.verbosity = verbosity
        if cache_ram_mib is None:
            cache_ram_mib = default_cache_ram_mib()
        params.cache_ram_mib = cache_ram_mib
        try:
            server = await asyncio.to_thread(xllamacpp.Server, params)
        except RuntimeError as error:
            raise ModelFileError(
                f"llama.cpp could not load {model_path} ({error}); it may be damaged, an "
                "architecture this llama.cpp does not know, or too large for memory; "
                "point --model at another GGUF file"
            ) from error
        return cls(
            server,
            api_key=api_key,
            model_path=model_path,
            context_length=context_length,
            slots=slots,
            cache_ram_mib=cache_ram_mib,
        )

    @property
    def running(self) -> bool:
        """Whether the server is serving (`stop` not called yet)."""
        return self._server is not None

    def add_stop_callback(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` at `stop`, before the server goes (e.g. a provider's `aclose`)."""
        self._stop_callbacks.append(callback)

    async def stop(self) -> None:
        """Cut the streams of the registered clients, then stop the server and free the model.

        Order matters: deleting the server while one of its replies is still
        streaming blocks for ~30 s inside llama.cpp, holding the GIL.
        """
        if self._server is None:
            return
        for callback in self._stop_callbacks:
            await callback()
        self._stop_callbacks.clear()
        await self._wait_until_idle()
        # Dropping the last reference runs the C++ destructor (joins its threads).
        # Do it in a worker thread, holding the object only in a list cleared there.
        holder = [self._server]
        self._server = None
        await asyncio.to_thread(holder.clear)

    async def _wait_until_idle(self) -> None:
        # llama.cpp notices a closed connection only between tokens; wait for
        # every slot to be free so the destructor does not hit the slow path.
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(
            headers=headers, timeout=_IDLE_WAIT_S, trust_env=False
        ) as client:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + _IDLE_WAIT_S
            while loop.time() < deadline:
                try:
                    slots = (await client.get(f"{self.base_url}/slots")).json()
                except (httpx.HTTPError, ValueError):
                    return
                if not isinstance(slots, list) or not any(
                    isinstance(slot, dict) and slot.get("is_processing") for slot in slots
                ):
                    return
                await asyncio.sleep(_IDLE_POLL_S)


async def start_embedded_provider(
    model_path: Path,
    *,
    context_length: int = 2048,
    slots: int = 1,
    threads: int | None = None,
    batch_threads: int | None = None,
    cache_ram_mib: int | None = None,
) -> tuple[EmbeddedServer, OpenAICompatProvider]:
    """Start the embedded server and return it with a provider bound to it.

    Threads default to `default_threads()`. `server.stop()` also closes the
    provider, cutting its streams first.
    """
    server = await EmbeddedServer.start(
        model_path,
        context_length=context_length,
        slots=slots,
        threads=threads,
        batch_threads=batch_threads,
        cache_ram_mib=cache_ram_mib,
    )
    provider = OpenAICompatProvider(
        server.base_url,
        model=model_path.stem,
        api_key=server.api_key,
        slots=slots,
        context_length=context_length,
        name="embedded",
        # A proxy from the environment must never sit between us and loopback.
        trust_env=False,
    )
    server.add_stop_callback(provider.aclose)
    return server, provider
