"""What a model family is in code: pipeline classes per task, run functions, tiny builders."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from .types import GenerationCancelled, GenerationRequest, GenerationResult, StepCallback, Task

# Why a batch runs as one call per seed unless an entry opts in (measured by tests/test_batching.py): batched kernels
# sum in another order, so an image made in a batch of 3 differs from the same seed made alone by float rounding
# (about 1e-6, up to 1/255 per pixel after quantisation) and the seed would not reproduce exactly on its own.
BATCH_ROUNDING = (
    "a batch in one pipeline call rounds differently from one call per seed (about 1e-6 on CPU float32, up to "
    "1/255 per pixel), so a seed from the batch would not reproduce exactly on its own"
)

# run(pipe, request, on_step, cancel) -> GenerationResult
RunFunction = Callable[[Any, GenerationRequest, StepCallback, "threading.Event | None"], GenerationResult]
# build(out_dir) writes a tiny random pipeline with save_pretrained
TinyBuilder = Callable[[Path], None]


@dataclass(frozen=True)
class Family:
    name: str
    # diffusers class name per task; the first task's class is what from_pretrained loads.
    pipeline_classes: dict[Task, str]
    runners: dict[Task, RunFunction]
    # tiny variant name -> builder; entries name their variant.
    tiny_builders: dict[str, TinyBuilder] = field(default_factory=dict)
    # pixel sizes must be multiples of this
    size_multiple: int = 16
    # the largest side the tiny preview runs at (outputs are resized to the requested size)
    preview_side: int = 64
    # frames the tiny preview renders for video tasks
    preview_frames: int = 9
    # optional request fields (pipelines.types.OPTION_LABELS) the runners read, per task, beyond the ones the
    # task itself implies (input images, strength, frames); anything else set on a request is refused
    options: dict[Task, frozenset[str]] = field(default_factory=dict)
    # tasks whose pipeline can take a whole batch in one call (a list of seeded generators); an entry opts in with
    # batch = "one-call", which trades exact per-seed reproduction for speed (BATCH_ROUNDING)
    batch_tasks: frozenset[Task] = frozenset()
    # how a folder of weights loads: None is diffusers' DiffusionPipeline.from_pretrained; a family of another library
    # (a language model through transformers) gives its own, called as loader(location, from_pretrained kwargs, device)
    loader: Callable[[str, dict, torch.device], Any] | None = None
    marker: str = "model_index.json"  # the file whose presence makes a folder (or a cached repo) this family's weights

    def __post_init__(self) -> None:
        missing = set(self.pipeline_classes) ^ set(self.runners)
        if missing:
            raise ValueError(f"family {self.name}: tasks without both a class and a runner: {sorted(missing)}")

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(self.pipeline_classes)

    def accepts(self, task: Task) -> frozenset[str]:
        """Every optional request field this family's runner for `task` reads."""
        return task.inherent_options() | self.options.get(task, frozenset())

    def takes_option(self, option: str) -> bool:
        """Whether any of the family's runners reads `option`."""
        return any(option in self.accepts(task) for task in self.tasks)


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    _FAMILIES[family.name] = family
    return family


FAMILY_MODULES = ("sdxl", "flux", "flux_kontext", "flux2", "z_image", "qwen_image_edit", "wan", "ltx", "causal_lm")


def families() -> dict[str, Family]:
    """Every family in code; importing a family module registers it."""
    import importlib

    for module in FAMILY_MODULES:
        importlib.import_module(f"{__package__}.families.{module}")
    return dict(_FAMILIES)


def get_family(name: str) -> Family:
    known = families()
    if name not in known:
        raise KeyError(f"unknown family {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def execution_device(pipe: Any) -> torch.device:
    device = getattr(pipe, "_execution_device", None) or getattr(pipe, "device", None)
    return torch.device(device or "cpu")


def step_hook(on_step: StepCallback, cancel: threading.Event | None, index: int, count: int, planned: int):
    """A diffusers callback_on_step_end that reports progress and honours cancellation.

    Pipelines may run fewer steps than asked (img2img runs steps x strength); they record the real
    number in `num_timesteps` before the loop, so progress always ends at done == total.
    """

    def _callback(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        per_call = int(getattr(pipe, "_num_timesteps", 0) or planned)
        on_step(index * per_call + step + 1, per_call * count)
        if cancel is not None and cancel.is_set():
            pipe._interrupt = True
            raise GenerationCancelled("cancelled")
        return callback_kwargs

    return _callback


def run_per_seed(
    pipe: Any,
    request: GenerationRequest,
    on_step: StepCallback,
    cancel: threading.Event | None,
    call: Callable[[torch.Generator, Callable], Any],
    parameters: dict[str, Any],
    video: bool = False,
) -> GenerationResult:
    """Run one pipeline call per seed; `call(generator, callback)` returns the pipeline output."""
    seeds = request.seeds()
    device = execution_device(pipe)
    # CPU generators keep seeded outputs identical across devices of the same dtype.
    gen_device = "cpu" if device.type == "mps" else device
    result = GenerationResult(seeds=seeds, parameters=dict(parameters, seeds=seeds))
    if request.one_call and len(seeds) > 1 and not video:
        # One call for the whole batch: one generator per seed (each latent drawn from its own seed), one prompt
        # encoding, one denoising loop; progress runs once over the steps.
        generators = [torch.Generator(device=gen_device).manual_seed(seed) for seed in seeds]
        output = call(generators, step_hook(on_step, cancel, 0, 1, request.steps))
        result.images.extend(_to_pil(image) for image in output.images)
        result.parameters["batch"] = "one call"
        return result
    for i, seed in enumerate(seeds):
        generator = torch.Generator(device=gen_device).manual_seed(seed)
        output = call(generator, step_hook(on_step, cancel, i, len(seeds), request.steps))
        if video:
            frames = output.frames[0]
            result.videos.append([_to_pil(f) for f in frames])
        else:
            result.images.append(_to_pil(output.images[0]))
    return result


def _to_pil(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    import numpy as np

    array = image.detach().float().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255).round().astype("uint8")
    return Image.fromarray(array)


def request_kwargs(request: GenerationRequest, generator: torch.Generator, callback: Callable, *, size: bool = True) -> dict[str, Any]:
    """What every family's pipeline call takes from the request the same way: prompt, size (unless the pipeline
    takes it from its input image), steps, the seeded generator, the step callback, PIL output. Guidance,
    negative prompts and images differ per family and are passed beside it."""
    kwargs: dict[str, Any] = {
        "prompt": request.prompt,
        "num_inference_steps": request.steps,
        "generator": generator,
        "callback_on_step_end": callback,
        "output_type": "pil",
    }
    if isinstance(generator, list):  # a batch in one call (run_per_seed with request.one_call)
        kwargs["num_images_per_prompt"] = len(generator)
    if size:
        kwargs.update(width=request.width, height=request.height)
    return kwargs


def common_parameters(request: GenerationRequest, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "width": request.width,
        "height": request.height,
        "steps": request.steps,
        "guidance": request.guidance,
        "count": request.count,
    }
    params.update(extra)
    return params
