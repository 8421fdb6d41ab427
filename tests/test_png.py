"""The PNG writer: lossless, standard (read back by Pillow and by OpenCV's libpng), both metadata chunks readable as
A1111-style readers read them, at most 1.3x the size of Pillow's default level on a natural photo."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from services.media.png import JSON_KEY, a1111_parameters, parse_a1111_parameters, png_bytes, read_png_metadata


def natural(side: int = 1024) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.LANCZOS)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Walk the file as the PNG spec lays it out, checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        out.append((kind, body))
        at += 12 + length
    return out


PARAMS = {"prompt": "a café at dusk — 東京の夜景", "negative_prompt": "blurry", "steps": 28, "sampler": "Euler",
          "guidance": 3.5, "width": 1024, "height": 1024, "model": "flux.1-dev"}


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_pixels_decode_identically_in_two_independent_readers(mode):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(3)
    if mode == "RGB":
        image = natural(512)
    else:
        channels = {"RGBA": 4, "L": 1, "LA": 2}[mode]
        shape = (257, 193, channels) if channels > 1 else (257, 193)
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    data = png_bytes(image, PARAMS, 11)
    with Image.open(io.BytesIO(data)) as back:
        assert back.mode == mode and np.array_equal(np.asarray(back), np.asarray(image))
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    expected = np.asarray(image)
    if mode in ("RGB", "RGBA"):
        decoded = decoded[..., [2, 1, 0, 3][: expected.shape[-1]]]  # OpenCV reads BGR(A)
    if mode == "LA":  # OpenCV has no grey+alpha: it expands to BGRA
        decoded = decoded[..., [0, 3]]
    assert np.array_equal(decoded, expected)
    kinds = [k for k, _ in chunks(data)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds


def test_both_metadata_chunks_read_back_as_pillow_and_a1111_read_them():
    image = natural(256)
    data = png_bytes(image, PARAMS, 11)
    with Image.open(io.BytesIO(data)) as back:
        text = back.text  # what A1111's "PNG Info" reads: image.info["parameters"]
        assert back.info["parameters"] == text["parameters"] == a1111_parameters(PARAMS, 11)
    parsed = parse_a1111_parameters(text["parameters"])
    assert parsed["prompt"] == PARAMS["prompt"] and parsed["Steps"] == "28" and parsed["seed"] == 11
    assert read_png_metadata(data)["record"]["seed"] == 11 and read_png_metadata(data)["record"]["model"] == "flux.1-dev"
    kinds = {k for k, _ in chunks(data)}
    assert b"iTXt" in kinds  # the non-Latin prompt travels as UTF-8
    latin = png_bytes(image, dict(PARAMS, prompt="a lighthouse"), 1)
    assert {k for k, _ in chunks(latin)} >= {b"tEXt"}
    # The chunks stand before the image data, where every reader looks first.
    order = [k for k, _ in chunks(data)]
    assert max(i for i, k in enumerate(order) if k in (b"tEXt", b"iTXt")) < order.index(b"IDAT")


def test_the_file_is_at_most_1_3x_pillows_default_on_a_natural_photo():
    image = natural(1024)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", a1111_parameters(PARAMS, 11))
    old = io.BytesIO()
    image.save(old, format="PNG", pnginfo=info)
    new = png_bytes(image, PARAMS, 11)
    ratio = len(new) / len(old.getvalue())
    print(f"\n  1024x1024 photo: {len(new):,} bytes, {ratio:.2f}x Pillow's default level")
    assert ratio <= 1.3
    assert JSON_KEY in Image.open(io.BytesIO(new)).text


def test_a_batch_is_checked_once_and_encoded_in_parallel(make_services):
    """The output check of a batch of 3 is one batched call, and the three PNGs are written by the encoder threads."""
    import threading

    from services.creation.text import TextToImageParams
    from services.safety.output import Verdict

    class Spy:
        name = "spy"

        def __init__(self):
            self.batches: list[int] = []

        def check_image(self, image):  # not used when check_images exists
            raise AssertionError("checked one by one")

        def check_images(self, images):
            self.batches.append(len(images))
            return [Verdict(False, "safe")] * len(images)

    spy = Spy()
    services = make_services(safety=spy)
    threads: set[str] = set()
    encode = services.jobs._encode

    def recording(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return encode(*args, **kwargs)

    services.jobs._encode = recording
    account = services.identity.start(None, ip="10.8.0.1").account
    output = services.text.text_to_image(account, TextToImageParams("a lighthouse", "sdxl-base", steps=2, count=3))
    assert len(output.files) == 3 and spy.batches == [3]
    assert threads and all(name.startswith("encode") for name in threads)
