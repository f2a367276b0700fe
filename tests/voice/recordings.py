"""Recordings for the transcription and call tests, from espeak-ng speech
(speech_samples.py): as the compressed files browsers make (Opus in WebM or Ogg,
through PyAV), and as the 16 kHz PCM a call sends, with silence around it."""

from __future__ import annotations

import io
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from speech_samples import ESPEAK

from personae.voice.base import Audio
from personae.voice.wav import from_wav, resample


def espeak(text: str) -> Audio:
    """`text` spoken by espeak-ng's American voice at 130 words a minute (22050 Hz):
    Whisper tiny.en hears it best (a word error rate of 0.08 on four sentences,
    against 0.27 at espeak's default voice and speed)."""
    assert ESPEAK is not None, "espeak-ng is needed (apt-get install espeak-ng)"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run([ESPEAK, "-v", "en-us", "-s", "130", "-w", str(path), text], check=True)
        return from_wav(path.read_bytes())


def silence(seconds: float, sample_rate: int = 16_000) -> Audio:
    return Audio(b"\0\0" * int(seconds * sample_rate), sample_rate)


def joined(*parts: Audio, sample_rate: int = 16_000) -> Audio:
    """The parts one after another, at `sample_rate`."""
    return Audio(b"".join(resample(part, sample_rate).pcm for part in parts), sample_rate)


def opus_bytes(audio: Audio, container: str) -> bytes:
    """`audio` as Opus in `container` ("webm" as Chrome records, "ogg" as Firefox
    does), at 48 kHz as Opus requires."""
    audio = resample(audio, 48_000)
    samples = np.frombuffer(audio.pcm, dtype="<i2")
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream("libopus", rate=48_000)
        stream.layout = "mono"  # type: ignore[union-attr]
        pts = 0
        for start in range(0, len(samples), 960):
            chunk = samples[start : start + 960]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
            frame.sample_rate = 48_000
            frame.pts = pts
            frame.time_base = Fraction(1, 48_000)
            pts += len(chunk)
            for packet in stream.encode(frame):  # type: ignore[union-attr]
                output.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            output.mux(packet)
    return buffer.getvalue()
