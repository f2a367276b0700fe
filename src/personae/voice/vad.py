"""Streaming voice activity detection: where a speaker starts, and where their turn ends.

Silero VAD (the ONNX file that ships inside faster-whisper, `assets/silero_vad_v6.onnx`)
on ONNX Runtime, run as faster-whisper's `vad.py` runs it, one window at a time: each
window is 512 samples at 16 kHz (32 ms) preceded by the last 64 samples of the window
before it, and the model's recurrent state (`h`, `c`) goes from each window to the
next. A detector is fed PCM as it arrives and says when speech started (after
`min_speech_ms` of it, so a click or a cough is not a speaker) and when the turn
ended (after `end_silence_ms` of silence), handing over the turn's audio with a
little of what came before the speech. Blocking (ONNX Runtime): feed it in a thread.
"""

from __future__ import annotations

import collections
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personae.voice.base import Audio

SAMPLE_RATE = 16_000
WINDOW = 512  # samples the model judges at once (32 ms)
_CONTEXT = 64  # samples of the window before, which the model reads first
_WINDOW_MS = WINDOW * 1000 / SAMPLE_RATE


def silero_model_path() -> Path:
    """The Silero VAD model inside the installed faster-whisper (without importing it)."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("faster-whisper is not installed (the [voice] extra)")
    return Path(spec.origin).parent / "assets" / "silero_vad_v6.onnx"


class SileroVad:
    """The loaded model; one per process, shared by every detector (ONNX Runtime's
    `run` may be called from several threads at once)."""

    def __init__(self, session: Any) -> None:
        self._session = session

    @classmethod
    def load(cls, path: Path | None = None) -> SileroVad:
        """Blocking: load the model (a few MB) into one single-threaded session."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 4
        session = onnxruntime.InferenceSession(
            str(path or silero_model_path()),
            providers=["CPUExecutionProvider"],
            sess_options=options,
        )
        return cls(session)

    def probabilities(self, windows: np.ndarray, state: _State) -> np.ndarray:
        """Speech probabilities of consecutive windows (n x 512 float32), carrying
        `state` (the recurrent state and the last samples) from one call to the next."""
        context = np.concatenate([state.context[None, :], windows[:-1, -_CONTEXT:]], axis=0)
        batch = np.concatenate([context, windows], axis=1).astype(np.float32)
        output, state.h, state.c = self._session.run(
            None, {"input": batch, "h": state.h, "c": state.c}
        )
        state.context = windows[-1, -_CONTEXT:].copy()
        return np.asarray(output, dtype=np.float32).reshape(-1)


@dataclass
class _State:
    h: np.ndarray
    c: np.ndarray
    context: np.ndarray

    @classmethod
    def fresh(cls) -> _State:
        zeros = np.zeros((1, 1, 128), dtype=np.float32)
        return cls(zeros, zeros.copy(), np.zeros(_CONTEXT, dtype=np.float32))


@dataclass(frozen=True)
class VadConfig:
    """`threshold`: a window at or above it is speech; below `neg_threshold` it is
    silence (in between, it continues what was). `min_speech_ms` of speech make a
    start; `end_silence_ms` of silence after it end the turn; `pad_ms` of audio
    before the start are kept with the turn (the first syllable's onset);
    `max_turn_s` cuts a turn that never pauses."""

    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_speech_ms: int = 160
    end_silence_ms: int = 700
    pad_ms: int = 300
    max_turn_s: float = 60.0


@dataclass(frozen=True)
class SpeechStarted:
    """Someone started speaking (`min_speech_ms` ago)."""


@dataclass(frozen=True)
class TurnEnded:
    """The turn's audio at 16 kHz; `cut` when it was cut at `max_turn_s`, not ended
    by a pause."""

    audio: Audio
    cut: bool = False


VadEvent = SpeechStarted | TurnEnded


class TurnDetector:
    """One speaker's stream of 16 kHz PCM in, `SpeechStarted` and `TurnEnded` out."""

    def __init__(self, model: SileroVad, config: VadConfig | None = None) -> None:
        self._model = model
        self._config = config or VadConfig()
        self._state = _State.fresh()
        self._pending = np.zeros(0, dtype=np.float32)
        self._pad_windows = max(1, round(self._config.pad_ms / _WINDOW_MS))
        self._before: collections.deque[np.ndarray] = collections.deque(maxlen=self._pad_windows)
        self._turn: list[np.ndarray] = []  # windows since the speech began (pad first)
        self._speech_run = 0  # windows of speech in a row before a start
        self._silence_run = 0  # windows of silence since the last speech in a turn
        self._speaking = False  # inside a turn (a start was declared)

    @property
    def in_turn(self) -> bool:
        return self._speaking

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Blocking. Take 16-bit PCM at 16 kHz (any length); what happened in it."""
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32)
        self._pending = np.concatenate([self._pending, samples / 32768.0])
        whole = len(self._pending) // WINDOW
        if whole == 0:
            return []
        windows = self._pending[: whole * WINDOW].reshape(whole, WINDOW)
        self._pending = self._pending[whole * WINDOW :]
        probabilities = self._model.probabilities(windows, self._state)
        events: list[VadEvent] = []
        for window, probability in zip(windows, probabilities, strict=True):
            event = self._step(window, float(probability))
            if event is not None:
                events.append(event)
        return events

    def _step(self, window: np.ndarray, probability: float) -> VadEvent | None:
        config = self._config
        if not self._speaking:
            self._before.append(window)
            self._speech_run = self._speech_run + 1 if probability >= config.threshold else 0
            if self._speech_run * _WINDOW_MS < config.min_speech_ms:
                return None
            self._speaking, self._silence_run = True, 0
            self._turn = list(self._before)
            self._before.clear()
            return SpeechStarted()
        self._turn.append(window)
        if probability >= config.threshold:
            self._silence_run = 0
        elif probability < config.neg_threshold or self._silence_run:
            self._silence_run += 1
        if self._silence_run * _WINDOW_MS >= config.end_silence_ms:
            return self._end(cut=False)
        if len(self._turn) * WINDOW >= config.max_turn_s * SAMPLE_RATE:
            return self._end(cut=True)
        return None

    def _end(self, *, cut: bool) -> TurnEnded:
        # Keep `pad_ms` of the closing silence: whisper hears a word's end better.
        trailing = max(0, self._silence_run - self._pad_windows)
        windows = self._turn[: len(self._turn) - trailing]
        samples = np.concatenate(windows) if windows else np.zeros(0, dtype=np.float32)
        self._turn, self._speaking, self._speech_run, self._silence_run = [], False, 0, 0
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        return TurnEnded(Audio(pcm, SAMPLE_RATE), cut=cut)

    def reset(self) -> None:
        """Forget the turn being heard and the model's state (a new start)."""
        self._state = _State.fresh()
        self._pending = np.zeros(0, dtype=np.float32)
        self._before.clear()
        self._turn, self._speaking, self._speech_run, self._silence_run = [], False, 0, 0
