"""Voice: speech synthesis and transcription engines (the `[voice]` extra).

Nothing here imports an engine's package at import time: `base.voice_installed()`
tells whether the extra is there, and the engines load their model files only
when the container builds them (docs/voice.md).
"""
