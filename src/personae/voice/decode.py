"""Recordings from clients (WebM/Opus from a browser, Ogg, MP4/AAC, MP3, WAV) decoded
to 16 kHz mono PCM with PyAV (FFmpeg's libraries, installed with faster-whisper).

Decoding is CPU work on user data: callers run it through `offload.bounded`, and
it calls `check_deadline` between frames. A recording's length is counted while
decoding, so a tiny file that unpacks into hours of audio is refused at
`max_seconds` without decoding the rest.
"""

from __future__ import annotations

import io

import numpy as np

from personae.errors import AudioTooLong, AudioUnreadable
from personae.offload import check_deadline
from personae.voice.base import Audio

SAMPLE_RATE = 16_000


def decode_recording(data: bytes, *, max_seconds: float) -> Audio:
    """`data` as 16 kHz mono 16-bit PCM. Raises `AudioUnreadable` for anything that
    is not audio, `AudioTooLong` past `max_seconds`."""
    import av

    if not data:
        raise AudioUnreadable("the recording is empty")
    limit = int(max_seconds * SAMPLE_RATE)
    pieces: list[np.ndarray] = []
    count = 0
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioUnreadable("the file holds no audio")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)
                    count += len(samples)
                    if count > limit:
                        raise AudioTooLong(
                            f"recordings may last {max_seconds:g} s at most",
                            extra={"max_seconds": max_seconds},
                        )
                    pieces.append(samples)
                check_deadline("decoding the recording")
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
    except (av.error.FFmpegError, ValueError, IndexError) as error:
        raise AudioUnreadable(f"the recording cannot be decoded ({error})") from error
    if not pieces:
        raise AudioUnreadable("the recording holds no sound")
    pcm = np.concatenate(pieces).astype("<i2")[:limit]
    return Audio(pcm.tobytes(), SAMPLE_RATE)
