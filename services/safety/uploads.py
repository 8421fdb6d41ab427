"""Uploaded images: checked before any credit is reserved.

Only PNG, JPEG and WEBP are decoded (an explicit format allow-list, whatever the file is called), the byte
size and the pixel count are capped (a decompression bomb is refused from its header, before decoding),
animated images are refused, and the decoded pixels are copied into a fresh image so no EXIF or other
metadata travels further (orientation is applied first).
"""
from __future__ import annotations

import io
import os
import re
import struct
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError
from .policy import UploadLimits


class InvalidUpload(UserError, ValueError):
    """The upload is refused; the message says why and what to send instead."""


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def sniff_format(head: bytes) -> str | None:
    """The image format the first bytes announce: PNG, JPEG, WEBP, another known kind, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return _sniff(head)


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"GIF8"):
        return "GIF"
    if head[:4] == b"%PDF":
        return "PDF"
    if head[4:8] == b"ftyp":
        return "a video or HEIC file"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def load_image(source: str | Path | bytes, limits: UploadLimits) -> Image.Image:
    """Validate and decode one uploaded image; returns a metadata-free RGB (or RGBA) image."""
    allowed = ", ".join(limits.formats)
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        size = len(data)
        name = "upload"
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidUpload("The uploaded file is missing; upload it again.")
        size = os.path.getsize(path)
        name = path.name
        data = None
    if size > limits.max_bytes:
        raise InvalidUpload(f"{name} is {_mb(size)}; uploads are limited to {_mb(limits.max_bytes)}.")
    if data is None:
        data = Path(source).read_bytes()  # type: ignore[arg-type]
    kind = _sniff(data[:16])
    if kind and kind.upper() not in limits.formats:
        raise InvalidUpload(f"{name} is {kind}; only {allowed} images are accepted.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=limits.formats)
        except UnidentifiedImageError:
            raise InvalidUpload(f"{name} is not a {allowed} image (the file's contents, not its name, decide).") from None
        except (ValueError, SyntaxError, OSError, struct.error) as exc:  # e.g. PIL's cap on a PNG's compressed text chunk
            raise InvalidUpload(f"{name} could not be read as an image ({exc}); save it again as a plain {allowed} file.") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            declared = re.search(r"\((\d+) pixels\)", str(exc))
            amount = f"{int(declared.group(1)) / 1e6:.0f} megapixels" if declared else "too many pixels"
            raise InvalidUpload(f"{name} declares {amount}; the limit is {limits.max_pixels / 1e6:.0f} megapixels.") from None
        width, height = image.size
        if width * height > limits.max_pixels:
            raise InvalidUpload(
                f"{name} declares {width * height / 1e6:.0f} megapixels ({width}×{height}); the limit is {limits.max_pixels / 1e6:.0f} megapixels."
            )
        if getattr(image, "is_animated", False) or getattr(image, "n_frames", 1) > 1:
            raise InvalidUpload(f"{name} is animated; upload a still {allowed} image.")
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidUpload(f"{name} could not be decoded ({exc}); it may be truncated.") from None
    mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB"
    image = image.convert(mode)
    return Image.frombytes(mode, image.size, image.tobytes())  # pixels only: no EXIF, ICC or text chunks
