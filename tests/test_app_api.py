"""The launched app, driven with gradio_client exactly as researchers' scripts call it."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from services.metadata import read_png_metadata


def test_models_endpoint_lists_the_registry(client, registry):
    models = client.predict(api_name="/models")
    by_id = {m["id"]: m for m in models}
    assert list(by_id) == registry.ids()
    sdxl = by_id["sdxl-base"]
    assert sdxl["preview"] is True and sdxl["weights"] == "preview" and sdxl["runnable"] is True
    assert sdxl["sizes"]["16:9"]["1K"] == [1344, 768]
    assert by_id["flux.1-dev"]["licence"]["non_commercial"] is True
    assert by_id["nano-banana"]["runnable"] is False and "google API" in by_id["nano-banana"]["note"]


def test_text_to_image_returns_pngs_of_the_requested_size(client):
    gallery, info, notice = client.predict(
        prompt="a lighthouse at dusk",
        model="sdxl-base",
        negative_prompt="blurry",
        aspect_ratio="16:9",
        resolution="1K",
        count=2,
        seed=42,
        steps=3,
        guidance=4.0,
        api_name="/text_to_image",
    )
    assert info["seeds"] == [42, 43]
    assert info["preview"] is True and "offline preview" in notice
    assert len(gallery) == 2
    for item, seed in zip(gallery, [42, 43]):
        path = Path(item["image"])
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (1344, 768)
        meta = read_png_metadata(str(path))
        assert meta["parameters"]["prompt"] == "a lighthouse at dusk"
        assert meta["parameters"]["seed"] == seed and meta["parameters"]["Model"] == "sdxl-base"
        assert meta["record"]["preview"] is True


def test_bad_requests_get_clear_errors(client):
    import pytest
    from gradio_client.exceptions import AppError

    cases = [
        (dict(prompt="   ", model="sdxl-base"), "Write a prompt first"),
        (dict(prompt="x", model="dall-e-9"), "dall-e-9 is not in the list of choices"),
        (dict(prompt="x", model="sdxl-base", aspect_ratio="21:9"), "'21:9'.* is not in the list of choices"),
        (dict(prompt="x", model="sdxl-base", resolution="4K"), "offers 1:1 at 1K, not 4K"),
        (dict(prompt="x", model="nano-banana"), "google API"),
        (dict(prompt="x", model="sdxl-base", count=9), "greater than maximum value 8"),
    ]
    for kwargs, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(api_name="/text_to_image", **kwargs)
