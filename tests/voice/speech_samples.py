"""Speech for tests, made by espeak-ng (a real synthesiser, unrelated to the engines
under test), and a word error rate to compare transcripts with."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from personae.voice.base import Audio
from personae.voice.wav import from_wav

ESPEAK = shutil.which("espeak-ng")


def espeak_wav(text: str, path: Path, *, words_per_minute: int = 150) -> Path:
    """`text` spoken by espeak-ng into a WAV file (22,050 Hz, 16-bit mono)."""
    assert ESPEAK is not None, "espeak-ng is needed (apt-get install espeak-ng)"
    subprocess.run([ESPEAK, "-s", str(words_per_minute), "-w", str(path), text], check=True)
    return path


def espeak_audio(text: str, path: Path) -> Audio:
    return from_wav(espeak_wav(text, path).read_bytes())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: str, heard: str) -> float:
    """Word-level edit distance over the reference's length."""
    ref, hyp = words(reference), words(heard)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word)),
            )
    return row[-1] / max(len(ref), 1)
