"""Video files: H.264 MP4 (yuv420p, +faststart, plays in every browser) written with the FFmpeg binary that
ships inside the imageio-ffmpeg wheel, plus a poster frame.

Every stored MP4 carries its generation settings in the container's standard metadata tags (the iTunes-style
`udta/meta/ilst` atoms that FFmpeg's MP4 muxer writes and every MP4 tag reader knows):

- `title`: the prompt;
- `comment`: A1111's `parameters` text, as in the PNG (prompt, negative prompt, steps, sampler, CFG, seed, size,
  model);
- `description`: the JSON record, as in the PNG's `playground` chunk (every setting: prompt, model, seed, steps,
  width, height, request_id, stages, ...).

FFmpeg (`ffprobe -show_entries format_tags`), PyAV (`container.metadata`) and exiftool read them back;
`read_mp4_metadata` is the app's own reader. A provider's own file is remuxed with the same tags (stream copy, its
soundtrack kept); `bare_mp4` gives a copy without them."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .png import JSON_KEY, parse_a1111_parameters, png_texts

log = logging.getLogger(__name__)

# The tags this app writes (standard MP4 tags: FFmpeg's muxer keeps them without `-movflags use_metadata_tags`).
TITLE_TAG, PARAMETERS_TAG, SETTINGS_TAG = "title", "comment", "description"
# One command-line argument holds at most 128 KiB on Linux; a settings record is a few KiB.
MAX_TAG_BYTES = 120_000


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    codec: str


def mp4_tags(params: dict[str, Any], seed: int) -> dict[str, str]:
    """The metadata tags of an output video: the same texts as the PNG's two chunks, plus the prompt as its title."""
    texts = dict(png_texts(params, seed))
    tags = {TITLE_TAG: str(params.get("prompt", "")), PARAMETERS_TAG: texts["parameters"], SETTINGS_TAG: texts[JSON_KEY]}
    for key, value in tags.items():
        if "\0" in value:  # a command-line argument cannot hold NUL
            tags[key] = value = value.replace("\0", "")
        if len(value.encode()) > MAX_TAG_BYTES:
            raise ValueError(f"the video's {key} metadata is over {MAX_TAG_BYTES:,} bytes")
    return tags


def _metadata_args(tags: dict[str, str] | None) -> list[str]:
    args: list[str] = []
    for key, value in (tags or {}).items():
        args += ["-metadata", f"{key}={value}"]
    return args


def encode_mp4(frames: list[Image.Image], fps: int, tags: dict[str, str] | None = None) -> bytes:
    """Encode RGB frames, with `tags` (see `mp4_tags`) in the container; sizes must be even (yuv420p), which every
    registry video size is."""
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
            output_params=["-crf", "20", "-preset", "veryfast", "-movflags", "+faststart", *_metadata_args(tags)],
        )
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(np.asarray(frame.convert("RGB"))))
        writer.close()
        return Path(path).read_bytes()
    finally:
        os.unlink(path)


def tag_mp4(data: bytes, tags: dict[str, str]) -> bytes:
    """The same video with `tags` in its container: every stream copied as it is (a provider's soundtrack too),
    remuxed as MP4 with +faststart. A file FFmpeg cannot remux into MP4 is returned as it came (logged)."""
    return _remux(data, _metadata_args(tags), "video kept without settings metadata")


def bare_mp4(data: bytes) -> bytes:
    """The same video without its container tags (the settings `mp4_tags` wrote), streams copied: what a viewer who
    may not see the settings gets, as a PNG without its text chunks. Raises ValueError when FFmpeg cannot remux it."""
    bare = _remux(data, ["-map_metadata", "-1", "-fflags", "+bitexact"], None)
    if bare is data:
        raise ValueError("the video could not be remuxed without its metadata")
    return bare


def _remux(data: bytes, options: list[str], kept_note: str | None) -> bytes:
    import imageio_ffmpeg

    with tempfile.TemporaryDirectory(prefix="mp4-remux-") as folder:
        source, target = Path(folder) / "in", Path(folder) / "out.mp4"
        source.write_bytes(data)
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(source), "-map", "0",
                   "-c", "copy", "-movflags", "+faststart", *options, "-f", "mp4", str(target)]
        done = subprocess.run(command, capture_output=True, timeout=120)
        if done.returncode != 0 or not target.is_file():
            if kept_note:
                log.warning("%s: FFmpeg could not remux it (%s)", kept_note, done.stderr.decode(errors="replace").strip()[-300:])
            return data
        return target.read_bytes()


def read_mp4_tags(path: str | Path) -> dict[str, str]:
    """The container's metadata tags, as FFmpeg reads them (its `ffmetadata` dump, unescaped)."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"]
    done = subprocess.run(command, capture_output=True, timeout=60)
    if done.returncode != 0:
        raise ValueError(f"{Path(path).name} is not a video FFmpeg reads: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return parse_ffmetadata(done.stdout.decode("utf-8", errors="replace"))


def parse_ffmetadata(text: str) -> dict[str, str]:
    """FFmpeg's ffmetadata format: `key=value` lines of the global section (before any [STREAM]/[CHAPTER]), where
    `=`, `;`, `#`, `\\` and newline are escaped with a backslash; lines starting with `;` or `#` are comments."""
    tags: dict[str, str] = {}
    entries: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append("\\")  # kept until split, so an escaped "=" is not taken as the separator
            escaped = True
        elif char == "\n":
            entries.append("".join(current))
            current = []
        else:
            current.append(char)
    if current:
        entries.append("".join(current))
    for entry in entries:
        if not entry or entry[0] in ";#":
            continue
        if entry.startswith("["):  # a stream or chapter section: the global tags are done
            break
        key, value = _split_unescaped(entry)
        if key is not None:
            tags[key] = value
    return tags


def _split_unescaped(entry: str) -> tuple[str | None, str]:
    key: list[str] = []
    value: list[str] = []
    into, escaped, seen = key, False, False
    for char in entry:
        if escaped:
            into.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "=" and not seen:
            into, seen = value, True
        else:
            into.append(char)
    return ("".join(key) if seen else None), "".join(value)


def read_mp4_metadata(path: str | Path) -> dict[str, Any]:
    """The settings an output video carries, like `read_png_metadata`: `parameters` (A1111's text, parsed), `record`
    (the JSON) and `title` (the prompt); keys absent when the file has no such tag."""
    tags = read_mp4_tags(path)
    out: dict[str, Any] = {}
    if TITLE_TAG in tags:
        out["title"] = tags[TITLE_TAG]
    if PARAMETERS_TAG in tags:
        out["parameters"] = parse_a1111_parameters(tags[PARAMETERS_TAG])
    if SETTINGS_TAG in tags:
        try:
            out["record"] = json.loads(tags[SETTINGS_TAG])
        except ValueError:
            pass  # a description this app did not write
    return out


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
