"""Video files: H.264 MP4 (yuv420p, +faststart, plays in every browser) written with the FFmpeg binary that
ships inside the imageio-ffmpeg wheel, plus a poster frame."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    codec: str


def encode_mp4(frames: list[Image.Image], fps: int) -> bytes:
    """Encode RGB frames; sizes must be even (yuv420p), which every registry video size is."""
    import imageio_ffmpeg

    if not frames:
        raise ValueError("a video needs at least one frame")
    width, height = frames[0].size
    if width % 2 or height % 2:
        raise ValueError(f"video size must be even for yuv420p, not {width}x{height}")
    fd, path = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        writer = imageio_ffmpeg.write_frames(
            path, (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=None, bitrate=None,
            macro_block_size=2, ffmpeg_log_level="error",
            output_params=["-crf", "20", "-preset", "veryfast", "-movflags", "+faststart"],
        )
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(np.asarray(frame.convert("RGB"))))
        writer.close()
        return Path(path).read_bytes()
    finally:
        os.unlink(path)


def probe_mp4(path: str | Path) -> VideoInfo:
    """Decode the file and count its frames (what a player would get)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    count = sum(1 for _ in reader)
    codec = str(meta.get("codec", ""))
    width, height = meta["size"]
    return VideoInfo(int(width), int(height), float(meta["fps"]), count, codec)


def first_frame(path: str | Path) -> Image.Image:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    data = reader.__next__()
    reader.close()
    width, height = meta["size"]
    return Image.frombytes("RGB", (width, height), bytes(data))
