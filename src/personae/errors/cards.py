"""Errors of character cards: import and export (docs/cards.md)."""

from __future__ import annotations

from personae.errors.base import Conflict, PayloadTooLarge, ValidationFailed


class InvalidCard(ValidationFailed):
    """A file that is not a character card we can read; the detail says what is wrong."""

    code = "invalid_card"
    title = "This file is not a valid character card"


class CardMissing(InvalidCard):
    code = "card_missing"
    title = "The file holds no character card"


class InvalidPng(InvalidCard):
    code = "invalid_png"
    title = "The PNG image is damaged or truncated"


class PngTooManyChunks(InvalidPng):
    code = "png_too_many_chunks"
    title = "The PNG image has too many chunks"


class UnsupportedCardFile(InvalidCard):
    code = "unsupported_card_file"
    title = "Upload a card as JSON, PNG or CHARX"


class ArchiveTooLarge(PayloadTooLarge):
    code = "archive_too_large"
    title = "The CHARX archive unpacks to too much data"


class CardTooLarge(PayloadTooLarge):
    """A card whose files (unpacked) are more than one card may store
    (PERSONAE_CARD_ASSETS_MAX_BYTES); `limit` says how much that is."""

    code = "card_too_large"
    title = "The card's files are too large"


class InvalidAvatar(ValidationFailed):
    code = "invalid_avatar"
    title = "An avatar is an uploaded picture or an https URL"


class InvalidImage(ValidationFailed):
    """A picture (an avatar, a card's image) that cannot be stored."""

    code = "invalid_image"
    title = "This picture cannot be used"


class ImageUnsupported(InvalidImage):
    code = "image_unsupported"
    title = "Only PNG, JPEG, GIF and WebP pictures are taken"


class ImageUnreadable(InvalidImage):
    code = "image_unreadable"
    title = "The picture is damaged or cut short"


class ImageTooManyPixels(InvalidImage):
    """More pixels than PERSONAE_IMAGE_MAX_PIXELS (`limit`), found from the header."""

    code = "image_too_many_pixels"
    title = "The picture has too many pixels"


class QuotaExceeded(Conflict):
    """What a user stores is past their quota; `quota`, `used` and `limit` say which
    and how much."""

    code = "quota_exceeded"
    title = "You have reached a limit of your account"


class InvalidTransition(Conflict):
    """An incident or maintenance asked to move to a state it cannot reach from its own."""

    code = "invalid_transition"
    title = "This change of state is not allowed"
