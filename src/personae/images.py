"""Pictures (avatars, card images): checked, decoded and resized with Pillow.

Pure CPU work on what users sent: callers run it off the event loop within a time
budget (personae.offload.bounded). A picture is refused before its pixels are
decoded when its header announces more pixels than the limit, so a small file
that inflates to gigabytes (a decompression bomb) costs nothing but its header.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from personae.errors import ImageTooManyPixels, ImageUnreadable, ImageUnsupported
from personae.offload import check_deadline

# The variants every picture gets, by their longest side in pixels (aspect kept,
# never enlarged); a request for another size gets the nearest larger one.
SIZES = (64, 256, 512)
VARIANT_MEDIA_TYPE = "image/webp"
# Pillow's format names of the pictures we take, and their media types.
_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


@dataclass(frozen=True)
class Variant:
    size: int  # the longest side it was made for (one of SIZES)
    media_type: str
    width: int
    height: int
    data: bytes
    etag: str  # sha256 of `data`, hex


@dataclass(frozen=True)
class ProcessedImage:
    original: bytes
    media_type: str
    width: int
    height: int
    sha256: str
    variants: list[Variant]

    @property
    def byte_count(self) -> int:
        """What storing it takes: the original and every variant."""
        return len(self.original) + sum(len(v.data) for v in self.variants)


def media_type_of(content: bytes) -> str | None:
    """The picture type the bytes' signature says, among those we take."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """The picture with only its header read; its size checked against `max_pixels`."""
    media_type = media_type_of(data)
    if media_type is None:
        raise ImageUnsupported("This file is not a PNG, JPEG, GIF or WebP picture.")
    try:
        image = Image.open(io.BytesIO(data), formats=[_format(media_type)])
    except Image.DecompressionBombError as error:
        raise _too_many(max_pixels) from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ImageUnreadable(
            f"The picture cannot be read: it is damaged, or not the {media_type} it says it is."
        ) from error
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageUnreadable("The picture has no pixels.")
    if width * height > max_pixels:
        raise _too_many(max_pixels, width, height)
    return image


def _format(media_type: str) -> str:
    return next(name for name, value in _FORMATS.items() if value == media_type)


def _too_many(max_pixels: int, width: int = 0, height: int = 0) -> ImageTooManyPixels:
    size = f" ({width} x {height})" if width else ""
    return ImageTooManyPixels(
        f"The picture has more pixels{size} than the {max_pixels:,} a picture may have. "
        "Make it smaller and try again.",
        extra={"limit": max_pixels},
    )


def _decoded(image: Image.Image) -> Image.Image:
    """The first frame, decoded, turned upright (EXIF) and in RGB or RGBA."""
    try:
        image.seek(0)
        image.load()
        upright = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageUnreadable(
            "The picture is damaged or cut short: its pixels cannot be decoded."
        ) from error
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    return upright.convert("RGBA" if has_alpha else "RGB")


def _variant(image: Image.Image, size: int) -> Variant:
    copy = image.copy()
    copy.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    copy.save(buffer, format="WEBP", quality=85, method=4)
    data = buffer.getvalue()
    return Variant(
        size, VARIANT_MEDIA_TYPE, copy.width, copy.height, data, hashlib.sha256(data).hexdigest()
    )


def process(data: bytes, *, max_pixels: int, sizes: tuple[int, ...] = SIZES) -> ProcessedImage:
    """The picture checked and decoded, with a WebP variant for each of `sizes`.

    Raises `ImageUnsupported` (not a PNG, JPEG, GIF or WebP), `ImageTooManyPixels`
    (more than `max_pixels`, found from the header alone) or `ImageUnreadable`
    (damaged or truncated).
    """
    image = _open(data, max_pixels)
    media_type = _FORMATS[str(image.format)]
    decoded = _decoded(image)
    variants = []
    for size in sizes:
        check_deadline("resizing the picture")
        variants.append(_variant(decoded, size))
    return ProcessedImage(
        original=data,
        media_type=media_type,
        width=decoded.width,
        height=decoded.height,
        sha256=hashlib.sha256(data).hexdigest(),
        variants=variants,
    )


def as_png(data: bytes, *, max_pixels: int) -> bytes:
    """The picture as a PNG (a PNG card carries its card in a PNG)."""
    if media_type_of(data) == "image/png":
        return data
    buffer = io.BytesIO()
    _decoded(_open(data, max_pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def nearest_size(requested: int) -> int:
    """The variant that serves a request for `requested` pixels: the smallest one at
    least that large, or the largest."""
    return next((size for size in SIZES if size >= requested), SIZES[-1])
