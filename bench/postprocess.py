"""The work after the pipeline, at the sizes people get, and batches: every ratio is measured in this one run.

    python bench/postprocess.py [--repeats 7] [--sizes 1024 2048] [--batch-steps 4] [--batch-side 256] [--skip-batch]

1. A natural photo (scikit-image's astronaut, a test dependency, upscaled with LANCZOS to 1024x1024 and 2048x2048)
   through each part of the delivery: PNG encoding with both metadata chunks (today's writer against Pillow's
   default level, the old path), the content-addressed store, and the output check (NudeNet, when the optional
   extra is installed: four single checks against one batched check). Encoder candidates are timed beside it, which
   is how the writer was chosen. Pixels are decoded back and compared: the writer must be lossless.
2. A batch of 4 at 256x256 on tiny SDXL and tiny FLUX.1 (random weights, real diffusers classes): one pipeline call
   for the batch against four calls, as a ratio.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image, PngImagePlugin  # noqa: E402

from services.media.png import DEFLATER, JSON_KEY, a1111_parameters, png_bytes, png_texts  # noqa: E402
from services.media.storage import OutputStore  # noqa: E402

PARAMS = {"prompt": "portrait of an astronaut in a white suit, studio light, detailed", "negative_prompt": "blurry",
          "steps": 28, "sampler": "FlowMatchEulerDiscreteScheduler", "guidance": 3.5, "width": 1024, "height": 1024,
          "model": "flux.1-dev", "task": "text-to-image", "revision": "main", "aspect_ratio": "1:1", "resolution": "1K"}


def photo(side: int) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.LANCZOS)


def pillow_default(image: Image.Image, params: dict, seed: int) -> bytes:
    """The old writer: Pillow's PNG encoder at its default zlib level, the same two text chunks."""
    info = PngImagePlugin.PngInfo()
    for key, value in png_texts(params, seed):
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def median_ms(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, out


def candidates(image: Image.Image) -> dict:
    """Encoders considered for the writer (same pixels, same chunks): name -> callable."""

    def pillow_level(level):
        def encode():
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=level)
            return buffer.getvalue()

        return encode

    out = {"Pillow, level 1": pillow_level(1), "Pillow, level 3": pillow_level(3)}

    def up_filter_with(compress):
        def encode():
            rows = np.asarray(image).reshape(image.height, -1)
            filtered = np.empty((image.height, rows.shape[1] + 1), np.uint8)
            filtered[:, 0] = 2
            filtered[0, 1:] = rows[0]
            np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
            return compress(filtered.tobytes())

        return encode

    out["Up filter + zlib 1"] = up_filter_with(lambda raw: zlib.compress(raw, 1))
    try:
        from zlib_ng import zlib_ng

        out["Up filter + zlib-ng 2"] = up_filter_with(lambda raw: zlib_ng.compress(raw, 2))
    except ImportError:
        pass
    try:
        import deflate

        out["Up filter + libdeflate 1"] = up_filter_with(lambda raw: deflate.zlib_compress(raw, 1))
    except ImportError:
        pass
    return out


def delivery(sizes: list[int], repeats: int) -> list[str]:
    lines = [f"post-pipeline work on a natural photo, median of {repeats}, this machine; writer: Up filter + {DEFLATER}",
             f"{'size':>6}  {'part':<46} {'ms':>9} {'x old':>7} {'bytes x old':>12}"]
    with tempfile.TemporaryDirectory() as tmp:
        store = OutputStore(Path(tmp))
        checker = _nudenet()
        for side in sizes:
            image = photo(side)
            params = dict(PARAMS, width=side, height=side)
            old_ms, old = median_ms(lambda: store.put(pillow_default(image, params, 7), ".png"), repeats)
            new_ms, new_path = median_ms(lambda: store.put(png_bytes(image, params, 7), ".png"), repeats)
            old_size = len(pillow_default(image, params, 7))
            new_bytes = Path(new_path).read_bytes()
            with Image.open(io.BytesIO(new_bytes)) as back:
                assert np.array_equal(np.asarray(back), np.asarray(image)), "the writer must be lossless"
                assert back.text["parameters"] == a1111_parameters(params, 7) and JSON_KEY in back.text
            encode_ms, _ = median_ms(lambda: png_bytes(image, params, 7), repeats)
            old_encode_ms, _ = median_ms(lambda: pillow_default(image, params, 7), repeats)
            store_ms, _ = median_ms(lambda: store.put(new_bytes + b"", ".png"), repeats)
            rows = [
                ("old: Pillow default level, encode + metadata + store", old_ms, 1.0, 1.0),
                ("new: encode + metadata + store", new_ms, new_ms / old_ms, len(new_bytes) / old_size),
                ("  encode + metadata (new)", encode_ms, encode_ms / old_encode_ms, len(new_bytes) / old_size),
                ("  encode + metadata (old)", old_encode_ms, 1.0, 1.0),
                ("  content-addressed store (hash + write)", store_ms, store_ms / old_ms, None),
            ]
            for name, encode in candidates(image).items():
                ms, data = median_ms(encode, max(3, repeats // 2))
                rows.append((f"  candidate: {name}", ms, ms / old_encode_ms, len(data) / old_size))
            if checker is not None:
                batch = [image] * 4
                single_ms, _ = median_ms(lambda: [checker.check_image(i) for i in batch], max(3, repeats // 2))
                batched_ms, _ = median_ms(lambda: checker.check_images(batch), max(3, repeats // 2))
                rows.append(("  output check, 4 images one by one (NudeNet)", single_ms, single_ms / old_ms, None))
                rows.append(("  output check, 4 images as one batch (NudeNet)", batched_ms, batched_ms / single_ms, None))
            for name, ms, ratio, size in rows:
                size_text = f"{size:.2f}" if size is not None else ""
                lines.append(f"{side:>6}  {name:<46} {ms:>9.1f} {ratio:>7.3f} {size_text:>12}")
            if checker is None:
                lines.append(f"{side:>6}  output check: NudeNet not installed (pip install -r requirements-safety.txt)")
    return lines


def _nudenet():
    try:
        from services.safety.output import NudeNetChecker
        from services.safety.policy import load_safety_file

        if not NudeNetChecker.available():
            return None
        return NudeNetChecker(load_safety_file().output["nudenet"]["flagged"])
    except Exception:
        return None


def batches(steps: int, repeats: int, side: int = 256) -> list[str]:
    import torch
    from diffusers import DiffusionPipeline

    from pipelines.family import get_family
    from pipelines.runtime import build_tiny
    from pipelines.types import GenerationRequest, Task

    torch.set_num_threads(1)
    lines = [f"a batch of 4 at {side}x{side}, {steps} steps, tiny random models on this CPU: one call vs four, median of {repeats}",
             f"{'model':<14} {'4 calls ms':>11} {'1 call ms':>10} {'1 call / 4 calls':>17}"]
    with tempfile.TemporaryDirectory() as tmp:
        for family_name, variant, guidance in (("sdxl", "sdxl", 5.0), ("flux", "flux", 3.5)):
            family = get_family(family_name)
            folder = build_tiny(family, variant, Path(tmp) / variant)
            pipe = DiffusionPipeline.from_pretrained(folder)
            pipe.set_progress_bar_config(disable=True)
            runner = family.runners[Task.TEXT_TO_IMAGE]
            base = GenerationRequest(prompt="a lighthouse at dusk", width=side, height=side, steps=steps, guidance=guidance, seed=3, count=4)

            def run(one_call: bool):
                from dataclasses import replace

                return runner(pipe, replace(base, one_call=one_call), lambda done, total: None, None)

            run(False), run(True)  # warm-up
            per_seed_ms, _ = median_ms(lambda: run(False), repeats)
            one_call_ms, _ = median_ms(lambda: run(True), repeats)
            lines.append(f"{'tiny ' + variant:<14} {per_seed_ms:>11.1f} {one_call_ms:>10.1f} {one_call_ms / per_seed_ms:>17.3f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--batch-steps", type=int, default=4)
    parser.add_argument("--batch-side", type=int, default=256, help="the batch comparison's image side")
    parser.add_argument("--skip-batch", action="store_true")
    args = parser.parse_args(argv)
    for line in delivery(args.sizes, args.repeats):
        print(line)
    if not args.skip_batch:
        print()
        for line in batches(args.batch_steps, max(1, args.repeats // 2), args.batch_side):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
