"""Settings: one object, built by `create_app()` or the CLI, never at import.

Values come from (highest first) keyword arguments, `PERSONAE_*` environment
variables, a TOML file named by `PERSONAE_CONFIG`, then the defaults here.
Every field is documented in docs/settings.md (a test checks it).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from personae.errors import ConfigurationError

_MIN_SECRET_KEY_LENGTH = 32
_KNOWN_INSECURE_KEYS = {"", "change-me", "changeme", "secret", "development"}


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "personae"


class Settings(BaseSettings):
    """All settings of a Personae process, grouped by section."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONAE_",
        extra="forbid",
        validate_default=True,
    )

    # --- general ---
    environment: Literal["development", "production"] = "production"
    data_dir: Path = Field(default_factory=_default_data_dir)
    secret_key: str | None = None

    # --- server ---
    # all: one process does everything; api: HTTP and streams, no replies written;
    # worker: replies and cluster duties, a port for health checks and metrics only.
    role: Literal["all", "api", "worker"] = "all"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_upload_bytes: int = Field(default=8 * 1_048_576, ge=1024)
    # Slow clients: the most a request head may take to arrive (then the connection
    # closes), and the longest wait for the next part of a body (then 408).
    request_head_timeout_s: float = Field(default=10.0, gt=0.0)
    request_body_timeout_s: float = Field(default=30.0, gt=0.0)
    # The most one imported card may store: its files unpacked (CHARX), or its image.
    card_assets_max_bytes: int = Field(default=16 * 1_048_576, ge=1024)
    # The most pixels a picture (avatar, card image) may have, read from its header
    # before anything is decoded (decompression bombs).
    image_max_pixels: int = Field(default=40_000_000, ge=1024, le=1_000_000_000)
    graceful_shutdown_s: float = Field(default=20.0, ge=0)
    cpu_budget_s: float = Field(default=5.0, gt=0.0)
    # Comma-separated in the environment ("10.0.0.0/8,::1"), a list in TOML.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # When set, /metrics answers only `Authorization: Bearer <this>`.
    metrics_token: str | None = Field(default=None, min_length=16)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # auto: readable lines on a terminal, JSON lines otherwise (a file, journald, Docker).
    log_format: Literal["auto", "text", "json"] = "auto"
    # The older switch: when set (and log_format is auto), true is json, false is text.
    log_json: bool | None = None

    # --- storage ---
    database_url: str | None = None
    auto_migrate: bool = True
    seed_demo: bool = True
    redis_url: str | None = None
    redis_prefix: str = Field(default="personae", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    redis_timeout_s: float = Field(default=5.0, gt=0.0)

    # --- accounts ---
    session_ttl_s: int = Field(default=14 * 24 * 3600, ge=60)
    session_renew_after_s: int = Field(default=300, ge=0)
    cookie_secure: bool = False
    password_min_length: int = Field(default=10, ge=8)
    login_rate_per_ip: str = "20/minute"
    # Failures of one (username, address) pair before its attempts wait, then the
    # wait, doubling with each failure up to the max.
    login_free_failures: int = Field(default=5, ge=1)
    login_delay_s: int = Field(default=1, ge=1)
    login_delay_max_s: int = Field(default=900, ge=1)
    # Failures of one username from every address in a day before addresses that
    # never signed in to it wait too (high: a stranger must not deny the owner).
    login_account_free_failures: int = Field(default=1000, ge=1)
    register_rate_per_ip: str = "10/hour"
    # Reports and appeals one user may file (together).
    report_rate_per_user: str = "30/hour"
    # Quotas per user (0: none): characters kept, and bytes of their cards' files.
    user_max_characters: int = Field(default=1000, ge=0)
    user_asset_quota_bytes: int = Field(default=256 * 1_048_576, ge=0)
    # The "trending" sort ranks characters by the messages sent in this many last days.
    trending_window_days: float = Field(default=7.0, gt=0.0, le=365.0)

    # --- inference ---
    model_path: Path | None = None
    # Where `personae models pull` fetches hub models (like huggingface_hub's HF_ENDPOINT).
    hf_endpoint: str = Field(default="https://huggingface.co", pattern=r"^https?://[^\s]+$")
    backend_url: str | None = None
    backend_api_key: str | None = None
    backend_model: str = "default"
    backend_slots: int = Field(default=4, ge=1, le=1024)
    embedded_slots: int = Field(default=1, ge=1, le=16)
    embedded_cache_ram_mib: int | None = Field(default=None, ge=0)
    backends: list[str] = Field(default_factory=list)
    backends_file: Path | None = None
    backend_probe_interval_s: float = Field(default=10.0, ge=0.0)
    routing_affinity: bool = True
    # Read a character's fixed prompt prefix into its backend's cache when a chat or a
    # character page is opened (lowest priority; see services/warmup.py).
    prompt_warmup: bool = True
    prompt_warmup_window_s: float = Field(default=300.0, ge=0.0)
    # A warm-up is read in requests of about this many tokens: a reply (or a status
    # probe) that comes meanwhile waits at most for the one being read.
    prompt_warmup_chunk_tokens: int = Field(default=128, ge=16, le=8192)
    first_token_timeout_s: float = Field(default=60.0, gt=0.0)
    between_tokens_timeout_s: float = Field(default=30.0, gt=0.0)
    quality_gate: bool = True
    context_length: int = Field(default=2048, ge=256)
    # One role-play turn (a few paragraphs); see settings.md for why 350.
    max_reply_tokens: int = Field(default=350, ge=1, le=8192)

    # --- chat and reply jobs ---
    message_max_chars: int = Field(default=4000, ge=1, le=100_000)
    job_lease_s: float = Field(default=15.0, ge=1.0)
    job_max_attempts: int = Field(default=3, ge=1, le=20)
    job_retry_base_s: float = Field(default=1.0, ge=0.0)
    job_max_takeovers: int = Field(default=3, ge=1, le=100)
    reply_deadline_s: float = Field(default=120.0, gt=0.0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0.0)
    heartbeat_timeout_s: float = Field(default=3.0, gt=0.0)
    leader_check_s: float = Field(default=2.0, gt=0.0)
    checkpoint_interval_s: float = Field(default=0.5, gt=0.0)
    event_log_size: int = Field(default=2000, ge=10)
    event_log_memory_mib: int = Field(default=64, ge=1)
    sse_heartbeat_s: float = Field(default=15.0, gt=0.0)

    # --- well-being ---
    # The time-spent notice shows once a chatting session lasts this long (minutes;
    # fractions allowed); a gap longer than the second setting ends a session.
    wellbeing_session_minutes: float = Field(default=60.0, gt=0.0, le=24 * 60)
    wellbeing_session_gap_minutes: float = Field(default=30.0, gt=0.0, le=24 * 60)

    # --- memory: personas, lorebooks, pinned memories, summary, recall ---
    memory_max_pinned: int = Field(default=15, ge=0, le=100)
    memory_max_chars: int = Field(default=2000, ge=1, le=32_000)
    lorebook_token_budget: int = Field(default=512, ge=0)
    summary_enabled: bool = True
    summary_priority: int = Field(default=-10, le=-1)
    summary_min_new_messages: int = Field(default=8, ge=1)
    summary_max_tokens: int = Field(default=200, ge=16, le=4096)
    summary_max_words: int = Field(default=150, ge=10, le=2000)
    recall_messages: int = Field(default=3, ge=0, le=20)
    recall_token_budget: int = Field(default=256, ge=0)
    recall_min_score: float = Field(default=0.2, ge=-1.0, le=1.0)
    embedding_model: Literal["auto", "lexical", "minilm"] = "auto"
    embedding_model_dir: Path | None = None
    cached_chats: int = Field(default=512, ge=1)
    recall_cached_chats: int = Field(default=8, ge=1)

    # --- the waiting room ---
    queue_max_per_user: int = Field(default=3, ge=1)
    queue_max_length: int = Field(default=500, ge=1)
    queue_max_wait_s: float = Field(default=120.0, gt=0.0)
    send_rate_per_user: str = "30/minute"
    send_rate_per_ip: str = "120/minute"

    # --- group rooms (docs/rooms.md) ---
    room_max_members: int = Field(default=20, ge=2, le=1000)
    room_max_characters: int = Field(default=8, ge=1, le=64)
    room_max_auto_turns: int = Field(default=10, ge=1, le=1000)
    room_send_rate: str = "60/minute"
    room_typing_rate: str = "30/minute"
    # How long a stream counts as here after its last refresh (it refreshes at a third).
    room_presence_ttl_s: float = Field(default=30.0, ge=3.0, le=600.0)
    rate_limit_memory_keys: int = Field(default=100_000, ge=100)

    # --- voice (docs/voice.md; needs the [voice] extra) ---
    # auto: on when the extra is installed; off: never (the API says voice_not_installed).
    voice: Literal["auto", "off"] = "auto"
    # Where pulled voice files live (default: <data_dir>/models).
    voice_dir: Path | None = None
    # The engine a character without a chosen voice speaks with, and its voice.
    speech_default_engine: Literal["piper", "kokoro", "openai"] = "piper"
    speech_default_voice: str = "en_US-joe-medium"
    # An operator's OpenAI-compatible speech server (/v1/audio/speech): the engine "openai".
    speech_url: str | None = None
    speech_api_key: str | None = None
    speech_model: str = "tts-1"
    # Which voices that server offers (comma-separated), as it has no list endpoint.
    speech_voices: str = "alloy,echo,fable,onyx,nova,shimmer"
    # Transcription: the shipped faster-whisper tiny.en, or an OpenAI-compatible server
    # (/v1/audio/transcriptions) when transcription_url is set.
    transcription_url: str | None = None
    transcription_api_key: str | None = None
    transcription_model: str = "whisper-1"
    # How many syntheses and transcriptions run at once (each one uses a core), and
    # how many may wait in line for them before voice_busy.
    voice_synthesis_slots: int = Field(default=1, ge=1, le=64)
    voice_transcription_slots: int = Field(default=1, ge=1, le=64)
    voice_queue_max: int = Field(default=16, ge=0, le=10_000)
    # Recordings sent to be transcribed, and a call's turn.
    audio_max_bytes: int = Field(default=4 * 1_048_576, ge=1024)
    audio_max_seconds: float = Field(default=60.0, gt=0.0, le=600.0)
    transcription_rate_per_user: str = "30/minute"
    speech_rate_per_user: str = "60/minute"
    # The most characters of a message read aloud (its first part if longer).
    speech_max_chars: int = Field(default=4000, ge=100, le=100_000)
    # Synthesised audio kept per message and voice (bytes in the database in all).
    speech_cache_max_bytes: int = Field(default=256 * 1_048_576, ge=0)
    # Calls: how long a pause ends the user's turn, and how sure the voice activity
    # detector must be that a 32 ms window is speech (0..1; higher hears less noise).
    call_turn_silence_ms: int = Field(default=700, ge=200, le=5000)
    call_vad_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    # Calls: how many one user may have open at once (in a process), the longest a call
    # lasts, and how long one stays open with nothing said or answered.
    call_max_per_user: int = Field(default=2, ge=1, le=100)
    call_max_duration_s: float = Field(default=3600.0, ge=1.0, le=86_400.0)
    call_idle_timeout_s: float = Field(default=300.0, ge=1.0, le=86_400.0)

    # --- moderation (docs/moderation.md) ---
    moderation_enabled: bool = True
    moderation_rules_file: Path | None = None
    moderation_classifier: Literal["none", "openai", "guard"] = "none"
    moderation_classifier_url: str | None = None
    moderation_classifier_api_key: str | None = None
    moderation_classifier_model: str | None = None
    moderation_classifier_timeout_s: float = Field(default=3.0, gt=0.0)
    moderation_classifier_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    moderation_guard_backend: str | None = None
    moderation_classify_output: bool = False
    crisis_resources_file: Path | None = None

    # --- status and transparency ---
    probe_interval_s: float = Field(default=30.0, ge=0.0)
    probe_timeout_s: float = Field(default=10.0, gt=0.0)
    probe_queue_wait_s: float = Field(default=60.0, gt=0.0)
    probe_reply_window_s: float = Field(default=300.0, gt=0.0)
    probe_retention_days: int = Field(default=90, ge=1)
    status_page_name: str = Field(default="Personae", min_length=1, max_length=100)
    public_url: str | None = None
    maintenance_mode: bool = False
    webhook_timeout_s: float = Field(default=5.0, gt=0.0)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_retry_base_s: float = Field(default=2.0, ge=0.0)
    webhook_lease_s: float = Field(default=30.0, gt=0.0)
    # Off: webhooks reach only public addresses (never loopback, private networks, ...).
    webhook_allow_private: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("PERSONAE_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [entry.strip() for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or CIDR range") from None
        return entries

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies)

    @model_validator(mode="after")
    def _classifier_has_url(self) -> Settings:
        if self.moderation_classifier == "openai" and not self.moderation_classifier_url:
            raise ValueError(
                "PERSONAE_MODERATION_CLASSIFIER=openai needs PERSONAE_MODERATION_CLASSIFIER_URL"
            )
        return self

    @model_validator(mode="after")
    def _refuse_insecure_secret(self) -> Settings:
        if self.environment == "development" or self.secret_key is None:
            return self
        if self.secret_key in _KNOWN_INSECURE_KEYS or len(self.secret_key) < _MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                "PERSONAE_SECRET_KEY is too short or a known default; outside development "
                f"it must be at least {_MIN_SECRET_KEY_LENGTH} random characters "
                "(leave it unset to have one generated in the data directory)"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'personae.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (and the TOML file), with overrides."""
    try:
        return Settings(**overrides)
    except ValueError as error:
        raise ConfigurationError(str(error)) from error


def ensure_secret_key(settings: Settings) -> str:
    """Return the secret key, creating and keeping one in the data directory if unset.

    A generated key is written once with owner-only permissions so sessions and
    tokens survive restarts without the operator having to invent a key.
    """
    if settings.secret_key:
        return settings.secret_key
    key_file = settings.data_dir / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key)
    return key
