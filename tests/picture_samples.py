"""Real pictures made with Pillow, for the avatar and card image tests."""

from __future__ import annotations

import base64
import io

from PIL import Image


def picture(width: int = 40, height: int = 30, fmt: str = "PNG", *, noise: bool = False) -> bytes:
    """A picture of `width` x `height`: a gradient, or random pixels when `noise` (which
    compresses badly, to make a large file)."""
    if noise:
        import os

        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height))
        image.putdata(
            [
                (x * 255 // width, y * 255 // height, 128)
                for y in range(height)
                for x in range(width)
            ]
        )
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def data_url(content: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(content).decode('ascii')}"


def size_of(content: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(content)) as image:
        return image.size
