"""Latency of the full-size pipelines with random weights, each fast path side by side with plain bf16.

Latency does not depend on weight values, so each model is built from its published configs (bench/configs/*.json,
each component naming the config.json it copies) with random weights, in bf16 on CUDA, and run through the real
diffusers pipeline class. Per model and mode it times, with CUDA events, the median of --repeats runs after
--warmup runs:
  one denoising step (the gap between step-end callbacks; a CFG step is both passes), the whole generation,
  the text encoders (encode_prompt), the VAE decode, and peak GPU memory.
Models given fewer steps than their default (--steps, or a config's bench_steps: Wan at 480p x 81 frames) also
get the generation time at default steps, estimated from the measured step time and marked '*'.

Modes (each applied with the registry's own pipelines.fast_paths.apply_fast_paths to a fresh build):
  plain        bf16, diffusers defaults
  compile      torch.compile of the repeated transformer blocks
  attention    another attention backend (--attention-backend; _native_cudnn on CUDA)
  fp8+compile  torchao fp8 dynamic quantisation of the denoiser, then compile (needs an fp8 GPU)
  step-cache   First Block Cache (--cache-threshold). With random weights its skip rate says nothing about
               real prompts: read that row as the overhead and best case, not as a quality-preserving speed-up.
A mode a model cannot take (no fp8 GPU, a UNet whose attention bypasses diffusers' dispatcher, a denoiser
without diffusers' cache hooks) gets a row saying why.

  python bench/gpu_latency.py                       # every model and mode on the GPU
  python bench/gpu_latency.py --models flux.1-dev --modes plain compile --out bench/results/run.jsonl
  python bench/gpu_latency.py --tiny                # the same code with tiny configs, on a CPU
  python bench/gpu_latency.py --tiny --full-size --modes plain --steps 1   # real sizes/frames, tiny widths
  python bench/gpu_latency.py --table bench/results/run.jsonl   # print a saved run's table

--out appends each finished row (JSON lines) as it completes, so a run split over several invocations
(one model per call, to stay inside a time limit) collects into one table.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODELS = ("flux.1-dev", "flux.1-schnell", "sdxl-base", "z-image-turbo", "wan2.1-i2v-480p")
MODES = ("plain", "compile", "attention", "fp8+compile", "step-cache")


from bench.gpu_build import (CONFIGS, build_component, build_pipeline, building, component_config,  # noqa: E402,F401
                              load_spec, make_tokenizer, parameter_count)


# ---------------------------------------------------------------------------------------------------- timing

class Clock:
    """CUDA events on a GPU (no host sync inside the timed region), perf_counter on a CPU."""

    def __init__(self, device: str):
        import torch

        self.cuda = device.startswith("cuda")
        self.torch = torch

    def mark(self):
        if self.cuda:
            event = self.torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def ms(self, start, end) -> float:
        if self.cuda:
            end.synchronize()
            return start.elapsed_time(end)
        return (end - start) * 1000.0


@dataclass
class Row:
    model: str
    mode: str
    device: str
    size: str
    steps: int = 0
    default_steps: int = 0
    step_ms: float | None = None
    gen_s: float | None = None
    gen_default_s: float | None = None
    estimated: bool = False
    encode_ms: float | None = None
    decode_ms: float | None = None
    peak_gib: float | None = None
    applied: dict = field(default_factory=dict)
    note: str = ""
    date: str = ""

    @property
    def ok(self) -> bool:
        return self.gen_s is not None


def fast_paths_for(mode: str, args) -> dict:
    return {
        "plain": {},
        "compile": {"compile": True},
        "attention": {"attention_backend": args.attention_backend},
        "fp8+compile": {"fp8": True, "compile": True},
        "step-cache": {"step_cache": args.cache_threshold},
    }[mode]


def call_kwargs(spec: dict, tiny: bool, steps: int, size: tuple[int, int] | None = None) -> dict:
    from PIL import Image

    kwargs = dict(spec["call"])
    if tiny:
        kwargs.update(spec.get("tiny_call", {}))
    if size:
        kwargs["width"], kwargs["height"] = size
        if "image" in kwargs:
            kwargs["image"] = list(size)
    if "image" in kwargs:
        w, h = kwargs["image"]
        kwargs["image"] = Image.linear_gradient("L").convert("RGB").resize((w, h))
    kwargs["num_inference_steps"] = steps
    return kwargs


def timed(obj, name: str, clock: Clock, sink: list):
    """Wrap obj.name so each call appends (start, end) marks to sink; returns an undo function."""
    original = getattr(obj, name)

    @functools.wraps(original)
    def wrapper(*a, **k):
        start = clock.mark()
        out = original(*a, **k)
        sink.append((start, clock.mark()))
        return out

    setattr(obj, name, wrapper)
    return lambda: setattr(obj, name, original)


def count_passes(pipe):
    """Count passes through the denoiser's first and last repeated block (a step cache skips the tail).

    Hooks sit on a Linear inside each block: a cache hook replaces the block's forward, so a hook on the block
    itself would fire either way."""
    import torch

    from pipelines.fast_paths import denoiser

    model = denoiser(pipe)
    names = set(getattr(model, "_repeated_blocks", []) or [])
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    counts = [0, 0]
    for i, block in enumerate((blocks[0], blocks[-1])):
        linear = next(m for m in block.modules() if isinstance(m, torch.nn.Linear))
        linear.register_forward_pre_hook(lambda *_, i=i: counts.__setitem__(i, counts[i] + 1))
    return counts


def run_mode(model: str, spec: dict, mode: str, args, device: str, dtype) -> Row:
    import torch

    from pipelines.fast_paths import FastPathError, apply_fast_paths, fp8_unavailable_reason
    from pipelines.registry import FastPaths

    default_steps = spec["default_steps"]
    steps = args.steps or (None if args.tiny else spec.get("bench_steps")) or default_steps
    kw = call_kwargs(spec, args.tiny and not args.full_size, steps, args.size)
    size = f"{kw['width']}x{kw['height']}" + (f"x{kw['num_frames']}f" if "num_frames" in kw else "")
    row = Row(model, mode, args.device_name, size, steps, default_steps, date=datetime.date.today().isoformat())

    fast = FastPaths(**fast_paths_for(mode, args))
    if fast.fp8 and (reason := fp8_unavailable_reason()):
        row.note = reason  # before building: a full-size build is not free
        return row

    pipe = build_pipeline(spec, args.tiny, device, dtype)
    try:
        try:
            row.applied = apply_fast_paths(pipe, fast)
        except FastPathError as exc:
            row.note = str(exc)
            return row
        clock = Clock(device)
        encodes: list = []
        decodes: list = []
        undo = [timed(pipe, "encode_prompt", clock, encodes), timed(pipe.vae, "decode", clock, decodes)]
        step_marks: list = []
        passes = count_passes(pipe) if mode == "step-cache" else None

        def on_step(_pipe, _i, _t, callback_kwargs):
            step_marks[-1].append(clock.mark())
            return callback_kwargs

        def generate():
            step_marks.append([])
            start = clock.mark()
            with torch.inference_mode():
                pipe(**kw, generator=torch.Generator("cpu").manual_seed(0), callback_on_step_end=on_step,
                     output_type="np")
            return start, clock.mark()

        for _ in range(args.warmup):
            generate()
        for marks in (encodes, decodes, step_marks):
            marks.clear()
        if passes is not None:
            passes[:] = [0, 0]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        spans = [generate() for _ in range(args.repeats)]
        for u in undo:
            u()

        gens = [clock.ms(a, b) / 1000.0 for a, b in spans]
        steps_ms = [clock.ms(a, b) for marks in step_marks for a, b in zip(marks, marks[1:])]
        row.gen_s = statistics.median(gens)
        row.step_ms = statistics.median(steps_ms) if steps_ms else None
        row.encode_ms = statistics.median(clock.ms(a, b) for a, b in encodes) if encodes else None
        row.decode_ms = statistics.median(clock.ms(a, b) for a, b in decodes) if decodes else None
        if steps < default_steps and steps_ms:
            row.gen_default_s = row.gen_s + (default_steps - steps) * statistics.mean(steps_ms) / 1000.0
            row.estimated = True
        else:
            row.gen_default_s = row.gen_s
        if device.startswith("cuda"):
            row.peak_gib = torch.cuda.max_memory_allocated() / 2**30
        if passes is not None:
            head, tail = passes
            row.note = (f"ran the whole denoiser on {tail} of {head} passes (random weights: not the skip rate "
                        "real prompts would get)")
        return row
    finally:
        pipe = None
        gc.collect()
        if "compile" in mode:
            torch._dynamo.reset()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------------- report

def _num(value, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def table(rows: list[Row]) -> str:
    plain = {(r.model, r.device): r for r in rows if r.mode == "plain" and r.ok}
    lines = [
        "| model | mode | size | steps | one step (ms) | generation (s) | at default steps (s) | text encode (ms) "
        "| VAE decode (ms) | peak GPU (GiB) | step ÷ plain | generation ÷ plain |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for r in rows:
        base = plain.get((r.model, r.device))
        if not r.ok:
            notes.append(f"{r.model} / {r.mode}: {r.note}")
            lines.append(f"| {r.model} | {r.mode} | {r.size} | — | not run ({len(notes)}) | — | — | — | — | — | — | — |")
            continue
        step_ratio = r.step_ms / base.step_ms if base and base.step_ms and r.step_ms else None
        gen_ratio = r.gen_default_s / base.gen_default_s if base and base.gen_default_s else None
        default = _num(r.gen_default_s, ".2f") + (" *" if r.estimated else "")
        if r.note:
            notes.append(f"{r.model} / {r.mode}: {r.note}")
        lines.append(
            f"| {r.model} | {r.mode} | {r.size} | {r.steps}/{r.default_steps} | {_num(r.step_ms, '.1f')} "
            f"| {_num(r.gen_s, '.2f')} | {default} | {_num(r.encode_ms, '.1f')} | {_num(r.decode_ms, '.1f')} "
            f"| {_num(r.peak_gib, '.1f')} | {_num(step_ratio, '.2f')} | {_num(gen_ratio, '.2f')} |"
        )
    out = "\n".join(lines)
    if any(r.estimated for r in rows):
        out += "\n\n\\* estimated: measured generation + (default − measured steps) × mean step time."
    if notes:
        out += "\n\n" + "\n".join(f"{i}. {n}" for i, n in enumerate(notes, 1))
    return out


def read_rows(path: Path) -> list[Row]:
    """Rows of a --out file; a later row for the same (model, mode, device) replaces an earlier one."""
    latest: dict[tuple, Row] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = Row(**json.loads(line))
            latest[(row.model, row.mode, row.device)] = row
    return list(latest.values())


def machine(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    import os

    return f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()} (torch {torch.__version__})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--tiny", action="store_true", help="tiny configs on the CPU: checks the harness, not speed")
    parser.add_argument("--full-size", action="store_true",
                        help="with --tiny: the models' real sizes and frame counts on tiny widths (checks shapes, not speed)")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    parser.add_argument("--dtype", default=None, choices=("bfloat16", "float16", "float32"),
                        help="default: bfloat16 (float32 with --tiny on a CPU)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="denoising steps per run (default: the model's)")
    parser.add_argument("--size", type=lambda v: tuple(int(x) for x in v.split("x")), default=None,
                        help="WIDTHxHEIGHT instead of the model's size (e.g. full configs at a small size on a CPU)")
    parser.add_argument("--attention-backend", default=None,
                        help="backend for the 'attention' mode (default: _native_cudnn on CUDA, _native_math on CPU)")
    parser.add_argument("--cache-threshold", type=float, default=0.08, help="First Block Cache threshold")
    parser.add_argument("--out", type=Path, default=None, help="append rows here (JSON lines)")
    parser.add_argument("--table", type=Path, default=None, help="only print the table of a saved --out file")
    args = parser.parse_args(argv)

    if args.table:
        print(table(read_rows(args.table)))
        return 0

    import torch

    device = args.device or ("cpu" if args.tiny else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run with --tiny for the CPU check, or on a GPU machine", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype or ("float32" if device == "cpu" else "bfloat16"))
    args.attention_backend = args.attention_backend or ("_native_cudnn" if device.startswith("cuda") else "_native_math")
    args.device_name = machine(device) + (" — tiny configs" if args.tiny else "")
    if args.tiny and args.steps is None:
        args.steps = 2

    print(f"# {'tiny configs' if args.tiny else 'full-size, random weights'} on {args.device_name}, {dtype}, "
          f"median of {args.repeats} after {args.warmup} warm-up, {datetime.date.today()}", flush=True)
    rows: list[Row] = []
    for model in args.models:
        spec = load_spec(model)
        for mode in args.modes:
            t0 = time.perf_counter()
            row = run_mode(model, spec, mode, args, device, dtype)
            rows.append(row)
            status = f"{row.gen_s:.3f} s" if row.ok else f"not run: {row.note}"
            print(f"  {model:16s} {mode:12s} {status}  ({time.perf_counter() - t0:.0f} s wall)", flush=True)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with args.out.open("a") as f:
                    f.write(json.dumps(asdict(row)) + "\n")
    print()
    print(table(read_rows(args.out) if args.out else rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
