"""What a password must be: long enough, not common, not the username."""

from __future__ import annotations

from personae.errors import WeakPassword

_COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password123", "123456789", "1234567890", "12345678910",
        "qwertyuiop", "iloveyou12", "letmein123", "passw0rd12", "welcome123", "admin12345",
        "abcdefghij", "aaaaaaaaaa", "qwerty1234", "1q2w3e4r5t", "0123456789",
    }
)  # fmt: skip


def check_strength(password: str, username: str, *, minimum: int) -> None:
    """Refuse short, common or username-like passwords (422 weak_password), naming
    the reason."""
    if len(password) < minimum:
        raise WeakPassword(f"Use at least {minimum} characters.")
    lowered = password.lower()
    if lowered in _COMMON_PASSWORDS or len(set(password)) < 4:
        raise WeakPassword("This password is too common or too simple to guess.")
    if username and username in lowered:
        raise WeakPassword("The password must not contain the username.")
