"""The two further SDXL face paths: FaceID Plus v2 (face embedding + CLIP embedding of the aligned face crop) and
InstantID (its resampler adapter + an IdentityNet ControlNet on a keypoint image from the face engine), on tiny
random weights in the real key layouts, loaded through diffusers' own `load_ip_adapter` and `ControlNetModel`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines import face_adapter, face_paths
from pipelines.types import FaceConditioning, GenerationRequest, Task
from services.creation.remix import RemixError
from services.creation.text import TextToImageParams
from services.faces.engine import FaceEngine
from services.media.png import read_png_metadata
from tests.test_remix import make_figure

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def pixels(image_or_path) -> np.ndarray:
    if isinstance(image_or_path, Image.Image):
        return np.asarray(image_or_path.convert("RGB"))
    with Image.open(image_or_path) as image:
        return np.asarray(image.convert("RGB"))


def unit(seed: int) -> tuple[float, ...]:
    v = np.random.default_rng(seed).standard_normal(512)
    return tuple(v / np.linalg.norm(v))


def test_plusv2_receives_the_face_embedding_and_the_crops_clip_embedding(preview_runtime, registry):
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    entry = registry.get("sdxl-base")
    base = GenerationRequest(prompt="a portrait", width=1024, height=1024, steps=2, guidance=5.0, seed=4)
    plain = pixels(preview_runtime.run(entry, Task.TEXT_TO_IMAGE, base).images[0])
    crop = Image.fromarray(np.random.default_rng(1).integers(0, 255, (224, 224, 3), dtype=np.uint8))
    face = FaceConditioning(unit(7), scale=1.0, lora_weight=1.0, path="ip-adapter-faceid-plusv2", crop=crop)
    first = preview_runtime.run(entry, Task.TEXT_TO_IMAGE, GenerationRequest(**{**base.__dict__, "face": face}))

    pipe = preview_runtime.pipeline(entry, Task.TEXT_TO_IMAGE)
    layer = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    assert type(layer).__name__ == "IPAdapterFaceIDPlusImageProjection" and face_adapter.face_path(pipe) == "ip-adapter-faceid-plusv2"
    received: list[tuple[torch.Tensor, torch.Tensor]] = []
    handle = layer.register_forward_hook(lambda module, args, out: received.append((args[0].clone(), module.clip_embeds.clone())))
    try:
        again = preview_runtime.run(entry, Task.TEXT_TO_IMAGE, GenerationRequest(**{**base.__dict__, "face": face}))
    finally:
        handle.remove()
    assert np.array_equal(pixels(again.images[0]), pixels(first.images[0]))
    assert not np.array_equal(pixels(first.images[0]), plain)
    assert again.parameters["face_path"] == "ip-adapter-faceid-plusv2"
    assert {"lora": "faceid-plusv2-lora", "weight": 1.0} in again.parameters["loras"]  # its own LoRA, as its recipe pairs

    # Both embeddings reach the projection on every step: the face embedding (negative half zeros, CFG) and the CLIP
    # image encoder's penultimate hidden states of the crop (negative: of an all-zero image), computed here apart.
    folder = preview_runtime.settings.tiny_root / f"faceid-plusv2-{entry.tiny}" / "image_encoder"
    encoder = CLIPVisionModelWithProjection.from_pretrained(folder).eval()
    side = encoder.config.image_size
    inputs = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})(images=crop, return_tensors="pt")
    with torch.no_grad():
        want_pos = encoder(inputs.pixel_values, output_hidden_states=True).hidden_states[-2][0]
        want_neg = encoder(torch.zeros_like(inputs.pixel_values), output_hidden_states=True).hidden_states[-2][0]
    assert len(received) == base.steps
    ids, clip = received[0]
    assert torch.allclose(ids[1].flatten(), torch.tensor(face.embedding, dtype=ids.dtype), atol=1e-6)
    assert torch.count_nonzero(ids[0]) == 0
    assert torch.allclose(clip[1, 0], want_pos, atol=1e-5) and torch.allclose(clip[0, 0], want_neg, atol=1e-5)
    assert layer.clip_embeds is None and layer.shortcut  # cleared after the call; v2 adds the ID tokens back

    other_crop = FaceConditioning(face.embedding, scale=1.0, lora_weight=1.0, path=face.path, crop=crop.rotate(90))
    moved = preview_runtime.run(entry, Task.TEXT_TO_IMAGE, GenerationRequest(**{**base.__dict__, "face": other_crop}))
    assert not np.array_equal(pixels(moved.images[0]), pixels(first.images[0])), "the crop must condition the output"
    zero = FaceConditioning(face.embedding, scale=0.0, lora_weight=0.0, path=face.path, crop=crop)
    assert np.array_equal(pixels(preview_runtime.run(entry, Task.TEXT_TO_IMAGE, GenerationRequest(**{**base.__dict__, "face": zero})).images[0]), plain)
    assert np.array_equal(pixels(preview_runtime.run(entry, Task.TEXT_TO_IMAGE, base).images[0]), plain)  # muted, no face


def test_keypoint_image_follows_instantids_drawing_and_covers_other_ratios():
    points = [(0.4, 0.4), (0.6, 0.4), (0.5, 0.5), (0.42, 0.6), (0.58, 0.6)]
    image = pixels(face_paths.keypoint_image(points, 512, 256))
    for (x, y), colour in zip(points, face_paths.KEYPOINT_COLOURS):
        assert tuple(image[int(y * 256), int(x * 512)]) == colour
    assert tuple(image[5, 5]) == (0, 0, 0)
    midway = image[int(0.45 * 256), int(0.45 * 512)]  # on the left eye's limb to the nose, at 60%
    assert tuple(midway) == tuple(int(c * 0.6) for c in face_paths.KEYPOINT_COLOURS[0])
    # a square face image covering a 2:1 frame: scaled to the width, cropped top and bottom
    assert face_paths.cover_keypoints([(50, 50), (100, 25)], (100, 100), (200, 100)) == ((0.5, 0.5), (1.0, 0.0))


@sqlite_only
def test_instantid_controlnet_gets_the_face_engines_keypoints(make_services, face_pack, monkeypatch):
    services = make_services(face_pack=face_pack)
    account = services.identity.start(None, ip="10.4.9.1").account
    figure = make_figure(services, account)
    seen: list[dict] = []
    original = face_paths.identitynet_context

    def spying(*args, **kwargs):
        context = original(*args, **kwargs)
        received = context.__enter__()
        seen.append(received)

        class Wrapped:
            def __enter__(self):
                return received

            def __exit__(self, *exc):
                return context.__exit__(*exc)

        return Wrapped()

    monkeypatch.setattr(face_paths, "identitynet_context", spying)
    output = services.remix.figure_remix(account, figure_id=figure.id, prompt="portrait by a window", model="sdxl-base",
                                         face_path="instantid", likeness=0.8, aspect_ratio="16:9", seed=3, keep_style=False)
    cond = seen[0]["controlnet_cond"]
    assert seen[0]["conditioning_scale"] == 0.8
    height, width = cond.shape[-2:]
    assert width > height  # the 16:9 frame (the preview's size)
    with Image.open(figure.canonical_path) as canonical:
        canonical = canonical.convert("RGB")
    points = FaceEngine(face_pack).keypoints(canonical)
    frame = (output.parameters["width"], output.parameters["height"])  # the 16:9 output the face is placed in
    expected = face_paths.keypoint_image(face_paths.cover_keypoints(points, canonical.size, frame), width, height)
    got = (cond[-1].permute(1, 2, 0).float().numpy() * 255).round().astype(np.uint8)
    assert np.abs(got.astype(int) - pixels(expected).astype(int)).max() <= 1
    assert got.max() == 255  # the dots are there (the tiny detector always finds its one face)

    record = read_png_metadata(str(output.files[0]))["record"]
    assert record["face_path"] == "instantid" and record["controlnet_conditioning_scale"] == 0.8
    assert record["ip_adapter_scale"] == 0.8

    with pytest.raises(RemixError, match="face paths are: FaceID, FaceID Plus v2, InstantID"):
        services.remix.figure_remix(account, figure_id=figure.id, prompt="x", model="sdxl-base", face_path="pulid")
    with pytest.raises(RemixError, match="no face path"):
        services.remix.figure_remix(account, figure_id=figure.id, prompt="x", model="qwen-image-edit", face_path="instantid")


@sqlite_only
def test_instantid_at_scale_zero_is_plain_sdxl_and_unloading_restores_the_base(make_services, face_pack):
    from diffusers.models.embeddings import IPAdapterPlusImageProjection

    services = make_services(face_pack=face_pack)
    account = services.identity.start(None, ip="10.4.9.2").account
    figure = make_figure(services, account)
    common = dict(prompt="portrait in a garden", model="sdxl-base", aspect_ratio="1:1", seed=12)
    before = services.text.text_to_image(account, TextToImageParams(**common, steps=2))
    entry = services.registry.get("sdxl-base")
    pipe = services.runtime.pipeline(entry, Task.TEXT_TO_IMAGE)
    face_adapter.unload_faceid(pipe)  # whatever an earlier test left loaded: start from the bare base
    processors = {name: type(p) for name, p in pipe.unet.attn_processors.items()}
    bare = services.text.text_to_image(account, TextToImageParams(**common, steps=2))

    free = services.remix.figure_remix(account, figure_id=figure.id, likeness=0.0, keep_style=False, face_path="instantid", **common)
    close = services.remix.figure_remix(account, figure_id=figure.id, likeness=1.0, keep_style=False, face_path="instantid", **common)
    assert isinstance(pipe.unet.encoder_hid_proj.image_projection_layers[0], IPAdapterPlusImageProjection)
    # the one cache counts what the pipeline now holds: its components (with the adapter) and the ControlNet
    runtime = services.runtime
    slot = runtime.cache._slots[runtime._key(entry, runtime.resolve(entry))]
    controlnet = face_adapter._state(pipe)["controlnet"]
    components = sum(t.numel() * t.element_size() for c in slot.pipe.components.values() if isinstance(c, torch.nn.Module)
                     for t in {id(t): t for t in [*c.parameters(), *c.buffers()]}.values())
    assert slot.size >= components + sum(p.numel() * p.element_size() for p in controlnet.parameters())
    plain = services.text.text_to_image(account, TextToImageParams(**common, steps=free.parameters["steps"]))
    assert free.parameters["controlnet_conditioning_scale"] == 0.0 and free.parameters["ip_adapter_scale"] == 0.0
    assert np.array_equal(pixels(free.files[0]), pixels(plain.files[0])), "adapter 0 and ControlNet 0 must equal plain SDXL"
    assert not np.array_equal(pixels(close.files[0]), pixels(plain.files[0]))

    assert face_adapter.unload_faceid(pipe)
    assert face_adapter.face_path(pipe) is None and pipe.unet.encoder_hid_proj is None
    assert {name: type(p) for name, p in pipe.unet.attn_processors.items()} == processors
    after = services.text.text_to_image(account, TextToImageParams(**common, steps=2))
    assert np.array_equal(pixels(after.files[0]), pixels(bare.files[0])) and np.array_equal(pixels(bare.files[0]), pixels(before.files[0]))
