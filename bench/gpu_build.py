"""Full-size diffusers pipelines with random weights, built from their published configs (bench/configs/*.json): what
bench/gpu_latency.py times. Latency does not depend on weight values; `tiny` shrinks every width for a CPU run."""
from __future__ import annotations

import contextlib
import importlib
import json
from pathlib import Path

CONFIGS = Path(__file__).resolve().parent / "configs"


def load_spec(model: str) -> dict:
    path = CONFIGS / f"{model}.json"
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"no config for {model!r}; have {', '.join(sorted(p.stem for p in CONFIGS.glob('*.json')))}")
    for name, comp in spec["components"].items():
        if "tokenizer" not in comp and not comp.get("source"):
            raise ValueError(f"{path.name}: component {name!r} does not name the config it copies ('source')")
    return spec


def component_config(comp: dict, tiny: bool) -> dict:
    config = {k: v for k, v in comp["config"].items() if not k.startswith("_") and k != "architectures"}
    if tiny:
        config.update(comp.get("tiny", {}))
    return config


@contextlib.contextmanager
def building(device: str, dtype):
    """Construct parameters directly on the device in the target dtype (a 12B model never exists in fp32)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def make_tokenizer(comp: dict):
    from pipelines.tiny import tokenizers, z_image

    kind, length = comp["tokenizer"], comp["model_max_length"]
    # Tokenizers are not weights: offline stand-ins with the real padding lengths (77 for CLIP, 512 for T5/UMT5).
    return {
        "clip": tokenizers.clip_tokenizer,
        "t5": tokenizers.t5_tokenizer,
        "qwen": z_image.qwen_tokenizer,
    }[kind](model_max_length=length)


def build_component(comp: dict, tiny: bool, device: str, dtype):
    import torch

    if "tokenizer" in comp:
        return make_tokenizer(comp)
    module = importlib.import_module(comp["library"])
    cls = getattr(module, comp["class"])
    config = component_config(comp, tiny)
    if comp["class"].endswith(("Scheduler", "ImageProcessor")):
        return cls.from_config(config) if hasattr(cls, "from_config") else cls(**config)
    with building(device, dtype):
        if comp["library"] == "transformers":
            model = cls(getattr(module, comp["config_class"])(**config))
        else:
            model = cls.from_config(config)
    model.eval()
    keep = getattr(cls, "_keep_in_fp32_modules", None) if comp["library"] == "diffusers" else None
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not torch.isfinite(p).all():  # some start as torch.empty (whatever memory held); checkpoints overwrite them
                p.normal_(0.0, 0.02)
            if keep and any(k in name.split(".") for k in keep):
                p.data = p.data.float()  # as from_pretrained(torch_dtype=...) keeps them
    return model


def build_pipeline(spec: dict, tiny: bool, device: str, dtype):
    import diffusers
    import torch

    torch.manual_seed(0)
    components = {name: build_component(comp, tiny, device, dtype) for name, comp in spec["components"].items()}
    pipe = getattr(diffusers, spec["pipeline"])(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def parameter_count(model: str, component: str, tiny: bool = False) -> int:
    """Parameters of one component built on the meta device (no memory): checks a config against the published size."""
    import torch

    spec = load_spec(model)
    comp = spec["components"][component]
    module = importlib.import_module(comp["library"])
    cls = getattr(module, comp["class"])
    config = component_config(comp, tiny)
    with torch.device("meta"):
        built = cls(getattr(module, comp["config_class"])(**config)) if comp["library"] == "transformers" else cls.from_config(config)
    return sum(p.numel() for p in built.parameters())
