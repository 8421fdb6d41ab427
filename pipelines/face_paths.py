"""What FaceID Plus v2 and InstantID add to the face adapter (pipelines/face_adapter.py loads and unloads them).

FaceID Plus v2 (IP-Adapter-FaceID's recipe): the face embedding goes through `IPAdapterFaceIDPlusImageProjection`,
whose resampler attends to the CLIP image encoder's penultimate hidden states of the aligned face crop
(`clip_embeds`; for the negative half, those of an all-zero image, as diffusers' `encode_image` does), and "v2"
adds the ID tokens back (`shortcut`). The CLIP embeddings are set by a pre-hook for exactly one pipeline call and
cleared after it.

InstantID (InstantX's recipe, from diffusers core parts): the face embedding goes through its Resampler
(`IPAdapterPlusImageProjection`) into the UNet's IP attention, and an SDXL ControlNet (IdentityNet) gets a keypoint
image drawn from the face engine's five keypoints; its cross-attention context is the projected face tokens, not
the text (a pre-hook replaces `encoder_hidden_states` for the call). Scale 0 for both is exactly plain SDXL.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Sequence

import torch
from PIL import Image, ImageDraw

# InstantID's draw_kps: eyes, nose, mouth corners; limbs from each point to the nose, drawn at 60% brightness.
KEYPOINT_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255))
_LIMBS = ((0, 2), (1, 2), (3, 2), (4, 2))


def keypoint_image(keypoints: Sequence[tuple[float, float]], width: int, height: int) -> Image.Image:
    """The ControlNet's input: five coloured dots joined to the nose on black, at (x, y) fractions of the frame.
    Stick width 4 and dot radius 10 at 1024 pixels, as InstantID draws them, scaled with the frame."""
    side = max(width, height)
    stick = max(1, round(4 * side / 1024))
    radius = max(1, round(10 * side / 1024))
    points = [(x * width, y * height) for x, y in keypoints]
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for a, b in _LIMBS:
        (x0, y0), (x1, y1) = points[a], points[b]
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        nx, ny = -(y1 - y0) / length * stick, (x1 - x0) / length * stick
        colour = tuple(int(c * 0.6) for c in KEYPOINT_COLOURS[a])
        draw.polygon([(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], fill=colour)
    for (x, y), colour in zip(points, KEYPOINT_COLOURS):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    return image


def cover_keypoints(keypoints: Sequence[Sequence[float]], source: tuple[int, int], target: tuple[int, int]) -> tuple[tuple[float, float], ...]:
    """Keypoints in pixels of a `source`-sized image, as fractions of a `target` frame the image covers (scaled to
    fill it, centred, the overflow cropped), so the face keeps its place and proportions at any aspect ratio."""
    (sw, sh), (tw, th) = source, target
    scale = max(tw / sw, th / sh)
    dx, dy = (tw - sw * scale) / 2, (th - sh * scale) / 2
    return tuple(((float(x) * scale + dx) / tw, (float(y) * scale + dy) / th) for x, y in keypoints)


# -- FaceID Plus v2 ------------------------------------------------------------------------------------------
def load_image_encoder(folder: str, device: Any, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    encoder = CLIPVisionModelWithProjection.from_pretrained(folder, dtype=dtype).to(device).eval()
    size = int(encoder.config.image_size)
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return encoder, processor


@torch.no_grad()
def clip_hidden_states(encoder: Any, processor: Any, crop: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """(negative, positive) penultimate hidden states, each (1, 1, tokens, hidden): a zero image, and the crop."""
    pixels = processor(images=crop.convert("RGB"), return_tensors="pt").pixel_values.to(encoder.device, encoder.dtype)
    positive = encoder(pixels, output_hidden_states=True).hidden_states[-2]
    negative = encoder(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2]
    return negative[None], positive[None]


def _halves(neg: torch.Tensor, pos: torch.Tensor, batch: int, cfg: bool) -> torch.Tensor:
    """A batch of `batch` rows: negatives then positives with CFG (diffusers' order), else positives only."""
    if cfg:
        k = batch // 2
        return torch.cat([neg.expand(k, *neg.shape[1:]), pos.expand(k, *pos.shape[1:])])
    return pos.expand(batch, *pos.shape[1:])


@contextlib.contextmanager
def plus_clip_embeds(pipe: Any, state: dict, crop: Image.Image, cfg: bool, shortcut_scale: float = 1.0) -> Iterator[None]:
    """For one call: the projection sees the crop's CLIP embeddings (matched to its batch), v2's shortcut on."""
    layer = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    neg, pos = clip_hidden_states(state["image_encoder"], state["processor"], crop)
    seen: list[torch.Tensor] = []

    def before(module, args):
        batch = args[0].shape[0]
        module.clip_embeds = _halves(neg, pos, batch, cfg).to(dtype=pipe.unet.dtype)
        seen.append(module.clip_embeds)

    handle = layer.register_forward_pre_hook(before)
    layer.shortcut, layer.shortcut_scale = True, float(shortcut_scale)
    try:
        yield
    finally:
        handle.remove()
        layer.clip_embeds = None
        state["last_clip_embeds"] = seen[-1].detach() if seen else None


# -- InstantID -------------------------------------------------------------------------------------------------
def load_controlnet(folder: str, device: Any, dtype: torch.dtype) -> Any:
    from diffusers import ControlNetModel

    return ControlNetModel.from_pretrained(folder, torch_dtype=dtype).to(device).eval()


def controlnet_view(pipe: Any, controlnet: Any) -> Any:
    """The SDXL ControlNet pipeline over the same components (no copies), made once per loaded adapter."""
    from diffusers import StableDiffusionXLControlNetPipeline

    view = StableDiffusionXLControlNetPipeline.from_pipe(pipe, controlnet=controlnet)
    view.set_progress_bar_config(disable=True)
    return view


@contextlib.contextmanager
def identitynet_context(pipe: Any, controlnet: Any, face_embeds: torch.Tensor, cfg: bool) -> Iterator[dict]:
    """For one call: the ControlNet's cross-attention context is the projected face tokens (negative: a zero
    embedding through the same projection), matched to its batch. Yields a record of what it received."""
    layer = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    with torch.no_grad():
        flat = face_embeds.reshape(face_embeds.shape[0], -1, face_embeds.shape[-1])  # (2 or 1, 1, 512)
        tokens = layer(flat.to(dtype=pipe.unet.dtype))  # (2 or 1, queries, C)
    neg, pos = (tokens[:1], tokens[-1:]) if cfg else (tokens[:1], tokens[:1])
    received: dict = {}

    def before(module, args, kwargs):
        batch = kwargs["encoder_hidden_states"].shape[0]
        kwargs["encoder_hidden_states"] = _halves(neg, pos, batch, cfg).to(kwargs["encoder_hidden_states"].dtype)
        received.setdefault("controlnet_cond", kwargs.get("controlnet_cond"))
        received["conditioning_scale"] = kwargs.get("conditioning_scale")
        return args, kwargs

    handle = controlnet.register_forward_pre_hook(before, with_kwargs=True)
    try:
        yield received
    finally:
        handle.remove()
