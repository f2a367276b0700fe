"""Speech to test with: real espeak-ng speech (/usr/bin/espeak-ng), as WAV, as the
compressed recordings browsers make (Opus in WebM or Ogg, through PyAV), and as
the 16 kHz PCM a call sends; and a word error rate to compare what was heard."""

from __future__ import annotations

import io
import re
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from personae.voice.base import Audio
from personae.voice.wav import from_wav, resample, to_wav

ESPEAK = "/usr/bin/espeak-ng"


def espeak(text: str) -> Audio:
    """`text` spoken by espeak-ng (22050 Hz)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run([ESPEAK, "-w", str(path), text], check=True, timeout=60)
        return from_wav(path.read_bytes())


def silence(seconds: float, sample_rate: int = 16_000) -> Audio:
    return Audio(b"\0\0" * int(seconds * sample_rate), sample_rate)


def joined(*parts: Audio, sample_rate: int = 16_000) -> Audio:
    """The parts one after another, at `sample_rate`."""
    return Audio(b"".join(resample(part, sample_rate).pcm for part in parts), sample_rate)


def wav_bytes(audio: Audio) -> bytes:
    return to_wav(audio)


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


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(expected: str, heard: str) -> float:
    """(substitutions + deletions + insertions) / words expected (Levenshtein on words)."""
    want, got = words(expected), words(heard)
    row = list(range(len(got) + 1))
    for i, word in enumerate(want, start=1):
        previous, row[0] = row[0], i
        for j, other in enumerate(got, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[len(got)] / max(1, len(want))
