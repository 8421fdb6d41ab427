"""IP-Adapter FaceID (SDXL) on the tiny SDXL: real diffusers loading of a real-layout weight file, run on CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines import face_adapter
from pipelines.families.sdxl import image_to_image, text_to_image
from pipelines.tiny import sdxl as tiny_sdxl
from pipelines.tiny.ip_adapter import FACEID_SDXL_WEIGHT_NAME, build_faceid_sdxl
from pipelines.types import FaceConditioning, GenerationRequest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from diffusers import DiffusionPipeline

    root = tmp_path_factory.mktemp("faceid")
    tiny_sdxl.build(root / "sdxl")
    pipe = DiffusionPipeline.from_pretrained(root / "sdxl")
    pipe.set_progress_bar_config(disable=True)
    weights = build_faceid_sdxl(root / "faceid", root / "sdxl")
    return pipe, weights


def face(seed: int = 1) -> list[float]:
    emb = torch.randn(512, generator=torch.Generator().manual_seed(seed))
    return (emb / emb.norm()).tolist()  # insightface's normed_embedding is unit length


def conditioning(face_embedding=None, ip_adapter_scale=None) -> FaceConditioning | None:
    """The typed face value for a request (no face: None)."""
    return None if face_embedding is None else FaceConditioning(tuple(face_embedding), scale=ip_adapter_scale)


def request(**extra) -> GenerationRequest:
    return GenerationRequest(prompt="a portrait", negative_prompt="blurry", width=64, height=64, steps=2,
                             guidance=5.0, seed=7, face=conditioning(**extra))


def generate(pipe, run=text_to_image, **extra):
    result = run(pipe, request(**extra), lambda done, total: None, None)
    return np.asarray(result.images[0]), result.parameters


def processor_classes(pipe) -> dict[str, type]:
    return {name: type(proc) for name, proc in pipe.unet.attn_processors.items()}


def test_weight_file_has_the_real_faceid_layout(tiny):
    from safetensors import safe_open

    pipe, weights = tiny
    assert weights.name == FACEID_SDXL_WEIGHT_NAME
    with safe_open(str(weights), framework="pt") as f:
        shapes = {key: tuple(f.get_tensor(key).shape) for key in f.keys()}
    # Cross-attention processors sit at odd positions of unet.attn_processors (attn1, attn2 per block).
    cross = [i for i, name in enumerate(pipe.unet.attn_processors) if name.endswith("attn2.processor")]
    assert cross == [1, 3, 5, 7]
    expected = {
        "image_proj.proj.0.weight": (1024, 512), "image_proj.proj.0.bias": (1024,),
        "image_proj.proj.2.weight": (4 * 64, 1024), "image_proj.proj.2.bias": (4 * 64,),
        "image_proj.norm.weight": (64,), "image_proj.norm.bias": (64,),
    }
    for i in cross:
        expected[f"ip_adapter.{i}.to_k_ip.weight"] = (16, 64)
        expected[f"ip_adapter.{i}.to_v_ip.weight"] = (16, 64)
    assert shapes == expected
    # Deterministic: the same seed writes the same tensors.
    again = build_faceid_sdxl(weights.parent / "again", pipe.unet)
    with safe_open(str(weights), framework="pt") as a, safe_open(str(again), framework="pt") as b:
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())


def test_faceid_changes_output_scale_zero_and_unload_restore_it(tiny):
    from diffusers.models.embeddings import IPAdapterFaceIDImageProjection

    pipe, weights = tiny
    original_processors = processor_classes(pipe)
    base, base_params = generate(pipe)
    assert "ip_adapter_scale" not in base_params

    face_adapter.ensure_faceid(pipe, weights, scale=1.0)
    try:
        assert face_adapter.is_faceid_loaded(pipe)
        assert isinstance(pipe.unet.encoder_hid_proj.image_projection_layers[0], IPAdapterFaceIDImageProjection)
        loaded_projection = pipe.unet.encoder_hid_proj
        face_adapter.ensure_faceid(pipe, weights, scale=1.0)  # idempotent: no reload
        assert pipe.unet.encoder_hid_proj is loaded_projection

        # a. the face at scale 1.0 moves the output
        with_face, params = generate(pipe, face_embedding=face())
        assert params["ip_adapter_scale"] == 1.0
        assert not np.array_equal(with_face, base)
        assert np.abs(with_face.astype(int) - base.astype(int)).mean() > 1.0
        other_face, _ = generate(pipe, face_embedding=face(seed=2))
        assert not np.array_equal(other_face, with_face), "different faces must condition differently"
        again, _ = generate(pipe, face_embedding=face())
        assert np.array_equal(again, with_face), "the same face and seed must reproduce the output"

        # b. scale 0.0 is exactly the base output
        face_adapter.ensure_faceid(pipe, weights, scale=0.0)
        zero, params = generate(pipe, face_embedding=face())
        assert params["ip_adapter_scale"] == 0.0
        assert np.array_equal(zero, base)
        # a per-request scale overrides the loaded one
        per_request, params = generate(pipe, face_embedding=face(), ip_adapter_scale=1.0)
        assert params["ip_adapter_scale"] == 1.0 and np.array_equal(per_request, with_face)

        # Without a face the loaded adapter is muted: the plain output, for text- and image-to-image views.
        plain, params = generate(pipe)
        assert np.array_equal(plain, base) and "ip_adapter_scale" not in params
        assert face_adapter.faceid_scale(pipe) == 1.0, "muting for one call restores the scale"
    finally:
        # c. unloading restores the original pipeline
        assert face_adapter.unload_faceid(pipe)

    assert not face_adapter.is_faceid_loaded(pipe)
    assert processor_classes(pipe) == original_processors
    ip_types = face_adapter._ip_processor_classes()
    assert not any(isinstance(p, ip_types) for p in pipe.unet.attn_processors.values())
    assert pipe.unet.encoder_hid_proj is None and pipe.unet.config.encoder_hid_dim_type is None
    restored, _ = generate(pipe)
    assert np.array_equal(restored, base)
    with pytest.raises(RuntimeError, match="no FaceID adapter"):
        generate(pipe, face_embedding=face())


def test_faceid_is_shared_with_the_image_to_image_view(tiny):
    from diffusers import StableDiffusionXLImg2ImgPipeline
    from PIL import Image

    pipe, weights = tiny
    view = StableDiffusionXLImg2ImgPipeline.from_pipe(pipe)
    view.set_progress_bar_config(disable=True)
    reference = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))

    def img2img(**extra):
        req = GenerationRequest(prompt="a portrait", width=64, height=64, steps=2, guidance=5.0, seed=7,
                                reference_images=(reference,), strength=1.0, face=conditioning(**extra))
        return np.asarray(image_to_image(view, req, lambda done, total: None, None).images[0])

    base = img2img()
    face_adapter.ensure_faceid(pipe, weights, scale=1.0)  # loaded through the base pipe, seen by the view
    try:
        assert face_adapter.is_faceid_loaded(view)
        assert not np.array_equal(img2img(face_embedding=face()), base)
        assert np.array_equal(img2img(), base)
    finally:
        face_adapter.unload_faceid(view)
    assert not face_adapter.is_faceid_loaded(pipe)
    assert np.array_equal(img2img(), base)


def test_face_embeddings_follow_the_cfg_convention(tiny):
    pipe, _ = tiny
    emb = face()
    (with_cfg,) = face_adapter.face_embeds(pipe, emb, guidance=5.0)
    assert with_cfg.shape == (2, 1, 512) and with_cfg.dtype == pipe.unet.dtype
    assert torch.count_nonzero(with_cfg[0]) == 0  # negative (zeros) first
    assert torch.allclose(with_cfg[1, 0], torch.tensor(emb))
    (no_cfg,) = face_adapter.face_embeds(pipe, emb, guidance=1.0)
    assert no_cfg.shape == (1, 1, 512)
    (two,) = face_adapter.face_embeds(pipe, [emb, face(seed=3)], guidance=5.0)
    assert two.shape == (2, 2, 512)
    with pytest.raises(ValueError, match="512"):
        face_adapter.face_embeds(pipe, [0.0] * 128, guidance=5.0)
