"""The LoRA library: adapters applied per request through peft on the loaded pipeline and removed after it; pinned
to a figure with a weight. Tiny random LoRAs (written with peft + save_lora_weights) go through the real loading."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.lora import LoraUse, load_lora_library
from pipelines.types import GenerationRequest, Task
from services.errors import UserError

from .test_remix import make_figure


@pytest.fixture
def db_url(tmp_path):  # the paid path's database rules are tested on both databases elsewhere
    return f"sqlite:///{tmp_path / 'playground.db'}"


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_two_loras_change_the_output_and_removing_them_restores_the_base_exactly(preview_runtime, registry):
    entry = registry.get("sdxl-base")
    ids = [e.id for e in load_lora_library().loras][:2]
    request = GenerationRequest(prompt="a lighthouse keeper", width=1024, height=1024, steps=2, guidance=5.0, seed=4)

    def run(loras=()):
        result = preview_runtime.run(entry, Task.TEXT_TO_IMAGE, GenerationRequest(**{**request.__dict__, "loras": loras}))
        return pixels(result.images[0]), result.parameters

    base, params = run()
    assert "loras" not in params
    both, params = run(tuple(LoraUse(i, 0.9) for i in ids))
    assert params["loras"] == [{"lora": ids[0], "weight": 0.9}, {"lora": ids[1], "weight": 0.9}]
    one, _ = run((LoraUse(ids[0], 0.9),))
    assert np.abs(both - base).mean() > 1 and np.abs(one - base).mean() > 1 and np.abs(both - one).mean() > 0.5
    pipe = preview_runtime.pipeline(entry, Task.TEXT_TO_IMAGE)
    assert set(ids) <= {n for names in pipe.get_list_adapters().values() for n in names}  # loaded once, kept
    again, _ = run()
    assert np.array_equal(again, base)  # removed: the base output, pixel for pixel


def test_pinned_loras_apply_to_their_figure_only(make_services, face_pack):
    services = make_services(face_pack=face_pack)
    account = services.identity.start(None, ip="10.11.0.1").account
    with services.db.begin() as conn:
        services.ledger.adjust(conn, account.id, 100, "test", "several remixes")
    first, second = make_figure(services, account, "Ivy", 1), make_figure(services, account, "Oak", 2)
    ask = dict(prompt="portrait in a garden", model="sdxl-base", seed=12, likeness=0.5, keep_style=False)

    def remix(figure):
        output = services.remix.figure_remix(account, figure_id=figure.id, **ask)
        with Image.open(output.files[0]) as image:
            return pixels(image), output.parameters

    plain_first, _ = remix(first)
    plain_second, _ = remix(second)
    ids = [e.id for e in load_lora_library().loras][:2]
    with pytest.raises(UserError, match="not in the library"):
        services.figures.pin_loras(account, first.id, [{"id": "nope"}])
    with pytest.raises(UserError, match="up to 3"):
        services.figures.pin_loras(account, first.id, [{"id": ids[0]}] * 4)
    services.figures.pin_loras(account, first.id, [{"id": ids[0], "weight": 0.8}, {"id": ids[1], "weight": 0.6}])
    styled, params = remix(first)
    assert params["pinned_loras"] == {"applied": ids, "skipped": []}
    assert [u["lora"] for u in params["loras"]] == [*ids, "faceid-lora"]  # with FaceID's own LoRA at the likeness
    assert np.abs(styled - plain_first).mean() > 1  # the two LoRAs change the figure's output
    after, params = remix(second)  # another figure right after: unaffected
    assert np.array_equal(after, plain_second) and [u["lora"] for u in params["loras"]] == ["faceid-lora"]
    services.figures.pin_loras(account, first.id, [])
    unpinned, _ = remix(first)
    assert np.array_equal(unpinned, plain_first)  # removing them restores the base output exactly
    # a reference model of another family skips them, saying so
    services.figures.pin_loras(account, first.id, [{"id": ids[0]}])
    output = services.remix.figure_remix(account, figure_id=first.id, prompt="on a pier", model="qwen-image-edit", seed=3)
    assert output.parameters["pinned_loras"] == {"applied": [], "skipped": [ids[0]]}
    # ...and Kontext applies the figure's Kontext LoRA while skipping the SDXL one
    services.figures.pin_loras(account, first.id, [{"id": ids[0]}, {"id": "kontext-ghibli", "weight": 1.0}])
    output = services.remix.figure_remix(account, figure_id=first.id, prompt="on a pier", model="flux.1-kontext-dev", seed=3)
    assert output.parameters["pinned_loras"] == {"applied": ["kontext-ghibli"], "skipped": [ids[0]]}
    assert output.parameters["loras"] == [{"lora": "kontext-ghibli", "weight": 1.0}]


def test_faceid_runs_with_its_lora_active_and_off_after(preview_runtime, registry, monkeypatch):
    from peft.tuners.tuners_utils import BaseTunerLayer

    from pipelines.types import FaceConditioning

    entry = registry.get("sdxl-base")
    pipe = preview_runtime.pipeline(entry, Task.TEXT_TO_IMAGE)
    seen: list[list[str]] = []
    original = type(pipe).__call__

    def recording(self, *args, **kwargs):
        layers = [m for m in self.unet.modules() if isinstance(m, BaseTunerLayer)]
        seen.append(sorted(self.get_active_adapters()) if layers and not layers[0].disable_adapters else [])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", recording)
    embedding = tuple(np.random.default_rng(0).standard_normal(512) / 22.6)
    base = GenerationRequest(prompt="a portrait", width=1024, height=1024, steps=2, guidance=5.0, seed=8)
    plain = pixels(preview_runtime.run(entry, Task.TEXT_TO_IMAGE, base).images[0])
    face = GenerationRequest(**{**base.__dict__, "face": FaceConditioning(embedding, scale=0.8, lora_weight=0.8)})
    result = preview_runtime.run(entry, Task.TEXT_TO_IMAGE, face)
    assert "faceid-lora" in seen[-1]  # active during the run
    assert {"lora": "faceid-lora", "weight": 0.8} in result.parameters["loras"]
    layers = [m for m in pipe.unet.modules() if isinstance(m, BaseTunerLayer)]
    assert layers and all(layer.disable_adapters for layer in layers)  # off after it
    zero = GenerationRequest(**{**base.__dict__, "face": FaceConditioning(embedding, scale=0.0, lora_weight=0.0)})
    assert np.array_equal(pixels(preview_runtime.run(entry, Task.TEXT_TO_IMAGE, zero).images[0]), plain)
    assert np.array_equal(pixels(preview_runtime.run(entry, Task.TEXT_TO_IMAGE, base).images[0]), plain)
    # unloading the adapter takes its LoRA with it (library LoRAs stay loaded, switched off)
    from pipelines import face_adapter

    assert face_adapter.unload_faceid(pipe)
    assert "faceid-lora" not in {n for names in pipe.get_list_adapters().values() for n in names}
    assert np.array_equal(pixels(preview_runtime.run(entry, Task.TEXT_TO_IMAGE, base).images[0]), plain)


def test_kontext_takes_two_loras_at_once_and_removing_them_restores_its_base(preview_runtime, registry):
    entry = registry.get("flux.1-kontext-dev")
    ids = [e.id for e in load_lora_library().loras if e.family == entry.family]
    assert len(ids) == 2
    source = Image.fromarray(np.random.default_rng(3).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    request = GenerationRequest(prompt="the same person, in a rainy street", width=1024, height=1024, steps=2,
                                guidance=2.5, seed=6, reference_images=(source,))

    def run(loras=()):
        result = preview_runtime.run(entry, Task.REFERENCE, GenerationRequest(**{**request.__dict__, "loras": loras}))
        return pixels(result.images[0]), result.parameters

    base, params = run()
    assert "loras" not in params
    both, params = run((LoraUse(ids[0], 1.0), LoraUse(ids[1], 0.7)))
    assert params["loras"] == [{"lora": ids[0], "weight": 1.0}, {"lora": ids[1], "weight": 0.7}]
    one, _ = run((LoraUse(ids[0], 1.0),))
    assert np.abs(both - base).mean() > 0.5 and np.abs(one - base).mean() > 0.5 and np.abs(both - one).mean() > 0.2
    pipe = preview_runtime.pipeline(entry, Task.REFERENCE)
    assert set(ids) <= {n for names in pipe.get_list_adapters().values() for n in names}  # on the transformer, kept
    again, _ = run()
    assert np.array_equal(again, base)
    from pipelines.errors import UnsupportedOption

    with pytest.raises(UnsupportedOption, match="for sdxl models"):  # an SDXL LoRA is refused on Kontext, naming why
        run((LoraUse("pixel-art-xl", 0.8),))
