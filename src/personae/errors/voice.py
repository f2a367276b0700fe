"""Errors of voice: speech, transcription and calls (docs/voice.md)."""

from __future__ import annotations

from personae.errors.base import AppError, Conflict


class VoiceNotInstalled(AppError):
    """The server runs without the `[voice]` extra (or voice is turned off)."""

    code = "voice_not_installed"
    status = 501
    title = "Voice is not installed on this server"


class VoiceFilesMissing(AppError):
    """The extra is installed but an engine's model files were not pulled."""

    code = "voice_files_missing"
    status = 503
    title = "This voice's files are not on the server yet"


class UnknownVoice(AppError):
    code = "unknown_voice"
    status = 422
    title = "There is no such voice"


class AudioTooLarge(AppError):
    code = "audio_too_large"
    status = 413
    title = "The recording is too large"


class AudioTooLong(AppError):
    code = "audio_too_long"
    status = 413
    title = "The recording is too long"


class AudioUnreadable(AppError):
    code = "audio_unreadable"
    status = 422
    title = "The recording cannot be read as audio"


class NothingToSay(AppError):
    """Read-aloud of a message with no text to speak (empty, removed, failed)."""

    code = "nothing_to_say"
    status = 409
    title = "This message has nothing to read aloud"


class VoiceBusy(AppError):
    """Every synthesis or transcription slot is taken and the line for them is full."""

    code = "voice_busy"
    status = 503
    title = "Voice is busy right now"
    retryable = True


class SpeechEngineFailed(AppError):
    """An engine (or an operator's speech server) failed on a request."""

    code = "speech_engine_failed"
    status = 502
    title = "The speech engine failed"
    retryable = True


class NoSpeechHeard(AppError):
    """A recording sent to be transcribed held no words."""

    code = "no_speech_heard"
    status = 422
    title = "No speech was heard in the recording"


class CallReplaced(Conflict):
    """A call ended because the same user called the same chat from elsewhere."""

    code = "call_replaced"
    title = "This call was picked up somewhere else"


class TooManyCalls(AppError):
    """A user with PERSONAE_CALL_MAX_PER_USER calls open (in this process) called
    another chat."""

    code = "too_many_calls"
    status = 429
    title = "You have too many calls open"


class CallTimedOut(AppError):
    """A call ended by its limits: `limit` is `idle` (nothing said for
    PERSONAE_CALL_IDLE_TIMEOUT_S) or `length` (PERSONAE_CALL_MAX_DURATION_S)."""

    code = "call_timed_out"
    status = 408
    title = "The call ended"


class SpeechNotReady(AppError):
    """One sentence's audio was asked for before it was synthesised."""

    code = "speech_not_ready"
    status = 404
    title = "This part of the speech is not ready"
