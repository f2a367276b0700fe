"""WAV in and out, and the few sample conversions voice needs (numpy only)."""

from __future__ import annotations

import io
import wave

import numpy as np

from personae.errors import AudioUnreadable
from personae.voice.base import Audio


def to_wav(audio: Audio) -> bytes:
    """`audio` as a whole WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(audio.sample_rate)
        writer.writeframes(audio.pcm)
    return buffer.getvalue()


def streaming_wav_header(sample_rate: int) -> bytes:
    """A WAV header for a stream whose length is not known yet (sizes at their
    maximum, as streaming servers write them); the PCM follows it."""
    unknown = 0xFFFFFFFF
    byte_rate = sample_rate * 2
    return (
        b"RIFF" + unknown.to_bytes(4, "little") + b"WAVE"
        + b"fmt " + (16).to_bytes(4, "little") + (1).to_bytes(2, "little")
        + (1).to_bytes(2, "little") + sample_rate.to_bytes(4, "little")
        + byte_rate.to_bytes(4, "little") + (2).to_bytes(2, "little")
        + (16).to_bytes(2, "little")
        + b"data" + unknown.to_bytes(4, "little")
    )  # fmt: skip


def from_wav(data: bytes) -> Audio:
    """A WAV file's audio as mono 16-bit PCM (stereo mixed down, 8/32-bit converted).
    Raises `AudioUnreadable` for anything that is not a readable PCM WAV."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels, width = reader.getnchannels(), reader.getsampwidth()
            rate = reader.getframerate()
            frames = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError, ValueError) as error:
        raise AudioUnreadable(f"the audio is not a readable WAV file ({error})") from error
    if rate <= 0 or channels <= 0:
        raise AudioUnreadable("the WAV file names no sample rate or channels")
    samples = _as_float(frames, width)
    if channels > 1:
        whole = len(samples) - len(samples) % channels
        samples = samples[:whole].reshape(-1, channels).mean(axis=1)
    return from_float(samples, rate)


def _as_float(frames: bytes, width: int) -> np.ndarray:
    if width == 1:
        return (np.frombuffer(frames, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    if width == 4:
        return np.frombuffer(frames, dtype="<i4").astype(np.float32) / 2147483648.0
    raise AudioUnreadable(f"{width * 8}-bit WAV samples are not supported")


def to_float(audio: Audio) -> np.ndarray:
    """Samples in [-1, 1] as float32."""
    return np.frombuffer(audio.pcm, dtype="<i2").astype(np.float32) / 32768.0


def from_float(samples: np.ndarray, sample_rate: int) -> Audio:
    """float samples (clipped to [-1, 1]) as 16-bit PCM."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return Audio((clipped * 32767.0).astype("<i2").tobytes(), sample_rate)


def resample(audio: Audio, sample_rate: int) -> Audio:
    """`audio` at another sample rate (linear interpolation: enough for speech
    recognition and for a voice call's playback)."""
    if audio.sample_rate == sample_rate or not audio.pcm:
        return Audio(audio.pcm, sample_rate)
    samples = to_float(audio)
    count = round(len(samples) * sample_rate / audio.sample_rate)
    positions = np.linspace(0, len(samples) - 1, num=max(count, 1))
    return from_float(np.interp(positions, np.arange(len(samples)), samples), sample_rate)
