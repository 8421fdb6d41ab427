"""A provider's output bytes as frames or an image, bounded in pixels before they are decoded: an image by its header,
a video by its container probe (and again while its frames are read)."""
from __future__ import annotations

import io
import math
import os
import tempfile
import warnings
from pathlib import Path

from PIL import Image

from ..types import VideoFrames
from .calls import Malformed, Oversized

MAX_PIXELS = 40_000_000  # the same bound as uploads (presets/safety.toml [uploads] max_pixels)


def bounded(image: Image.Image, max_pixels: int) -> Image.Image:
    """A lazily opened image, refused from its header when it has more pixels than `max_pixels`."""
    width, height = image.size
    if width * height > max_pixels:
        raise Oversized(f"the image declares {width * height / 1e6:.0f} megapixels ({width}×{height}); "
                        f"the limit is {max_pixels / 1e6:.0f}")
    return image



def decode_image(data: bytes, width: int, height: int, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A provider's image bytes as an RGB image of the requested size (resized when the provider rounded it). The
    pixel count is read from the header and refused above `max_pixels` before anything is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the bound below is ours
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise Oversized(f"the image declares more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; "
                            f"the limit is {max_pixels / 1e6:.0f}") from exc
        except Exception as exc:
            raise Malformed("the image does not decode") from exc
        bounded(image, max_pixels)
        try:
            image.load()
        except Exception as exc:
            raise Malformed("the image does not decode") from exc
    image = image.convert("RGB")
    return image if image.size == (width, height) else image.resize((width, height), Image.LANCZOS)


def decode_video(data: bytes, width: int, height: int, max_pixels: int = MAX_PIXELS,
                 max_video_pixels: int = 1_000_000_000) -> VideoFrames:
    """A provider's video as frames; the file is kept as it came (with its soundtrack) when its size is the requested
    one, else the frames are resized and re-encoded by the store. The container is probed first: a frame over
    `max_pixels`, or frames x pixels over `max_video_pixels` (by the probed duration, and again while decoding), is
    refused before the frames are held."""
    import imageio_ffmpeg

    fd, name = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        Path(name).write_bytes(data)
        reader = None
        try:
            reader = imageio_ffmpeg.read_frames(name)
            meta = reader.__next__()
            size = tuple(meta["size"])
            pixels = size[0] * size[1]
            if pixels > max_pixels:
                raise Oversized(f"a video frame declares {pixels / 1e6:.0f} megapixels ({size[0]}×{size[1]}); "
                                f"the limit is {max_pixels / 1e6:.0f}")
            most = max(1, max_video_pixels // max(1, pixels))  # frames allowed at this size
            expected = math.ceil(float(meta.get("fps") or 0) * float(meta.get("duration") or 0))
            if expected > most:
                raise Oversized(f"the video declares about {expected} frames of {size[0]}×{size[1]}; the limit is {most}")
            frames = VideoFrames()
            for chunk in reader:
                if len(frames) >= most:
                    raise Oversized(f"the video has more than {most} frames of {size[0]}×{size[1]}")
                frames.append(Image.frombytes("RGB", size, bytes(chunk)))
        except (RuntimeError, OSError, StopIteration, KeyError, ValueError, TypeError) as exc:
            raise Malformed("the video does not decode") from exc
        finally:
            if reader is not None:
                reader.close()
    finally:
        os.unlink(name)
    if not frames:
        raise Malformed("the video has no frames")
    if size == (width, height):
        frames.encoded = data
        return frames
    return VideoFrames(frame.resize((width, height), Image.LANCZOS) for frame in frames)
