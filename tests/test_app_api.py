"""The launched app, driven with gradio_client exactly as researchers' scripts call it."""
from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client.exceptions import AppError
from PIL import Image

from services.media.png import read_png_metadata

from .conftest import ADMIN_KEY


def test_models_endpoint_lists_the_registry(client, registry):
    models = client.predict(api_name="/models")
    by_id = {m["id"]: m for m in models}
    assert list(by_id) == registry.ids()
    sdxl = by_id["sdxl-base"]
    assert sdxl["preview"] is True and sdxl["weights"] == "preview" and sdxl["runnable"] is True
    assert sdxl["sizes"]["16:9"]["1K"] == [1344, 768]
    assert by_id["flux.1-dev"]["licence"]["non_commercial"] is True
    assert by_id["nano-banana-2"]["runnable"] is False and "GEMINI_API_KEY" in by_id["nano-banana-2"]["note"]
    assert "path" not in sdxl["source"] and sdxl["source"]["local_folder"] is None  # "path" would read as a file


def test_session_quote_generate_balance(client, token):
    session = client.predict(token, api_name="/session_start")
    assert session["token"] == token and session["balance"] == 50 and session["tier"] == "guest"
    quote = client.predict(token, "flux.1-dev", "text-to-image", "16:9", "1K", 2, api_name="/quote")
    assert quote["total"] == 8 and quote["affordable"] is True and quote["balance"] == 50

    gallery, info, notice, bar = client.predict(
        prompt="a lighthouse at dusk",
        model="flux.1-dev",
        negative_prompt="blurry",
        aspect_ratio="16:9",
        resolution="1K",
        count=2,
        seed=42,
        steps=3,
        guidance=4.0,
        token=token,
        api_name="/text_to_image",
    )
    assert info["seeds"] == [42, 43] and info["charged"] == 8 and info["balance"] == 42
    assert info["preview"] is True and "offline preview" in notice and "balance now **42 credits**" in notice
    assert "42 credits" in bar
    assert client.predict(token, api_name="/balance")["balance"] == 42
    assert len(gallery) == 2
    for item, seed in zip(gallery, [42, 43]):
        path = Path(item["image"])
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (1344, 768)
        meta = read_png_metadata(str(path))
        assert meta["parameters"]["prompt"] == "a lighthouse at dusk"
        assert meta["parameters"]["seed"] == seed and meta["parameters"]["Model"] == "flux.1-dev"
        assert meta["record"]["preview"] is True and meta["record"]["request_id"] == info["request_id"]

    ledger = client.predict(token, api_name="/ledger")
    assert [(e["kind"], e["amount"]) for e in ledger] == [("capture", 0), ("reserve", -8), ("grant", 50)]
    (record,) = client.predict(token, api_name="/history")
    assert record["id"] == info["request_id"] and record["request"]["prompt"] == "a lighthouse at dusk"
    assert record["charged"] == 8 and record["urls"][0].startswith("/outputs/")


def test_over_balance_fails_clearly_and_charges_nothing(client, token):
    quote = client.predict(token, "flux.1-dev", "text-to-image", "1:1", "2K", 8, api_name="/quote")
    assert quote["total"] == 32 and quote["affordable"] is True
    for resolution, count in (("2K", 8), ("1K", 4)):
        client.predict(prompt="spend", model="flux.1-dev", resolution=resolution, count=count, steps=1, token=token, api_name="/text_to_image")
    assert client.predict(token, api_name="/balance")["balance"] == 2
    quote = client.predict(token, "flux.1-dev", "text-to-image", "1:1", "1K", 1, api_name="/quote")
    assert quote["affordable"] is False
    with pytest.raises(AppError, match="costs 4 credits but your balance is 2.*nothing was charged"):
        client.predict(prompt="one more", model="flux.1-dev", steps=1, token=token, api_name="/text_to_image")
    assert client.predict(token, api_name="/balance")["balance"] == 2
    assert len(client.predict(token, api_name="/history")) == 2


def test_idempotency_key_through_the_api(client, token):
    kwargs = dict(prompt="a paper boat", model="sdxl-base", steps=1, seed=5, token=token, api_name="/text_to_image")
    first = client.predict(idempotency_key="script-run-1", **kwargs)
    again = client.predict(idempotency_key="script-run-1", **kwargs)
    assert again[1]["replayed"] is True and again[1]["files"] == first[1]["files"]
    assert "not charged again" in again[2]
    assert client.predict(token, api_name="/balance")["balance"] == 49
    with pytest.raises(AppError, match="already used for a different request"):
        client.predict(idempotency_key="script-run-1", **dict(kwargs, prompt="a paper plane"))


def test_tokens_are_required_and_verified(client, token):
    with pytest.raises(AppError, match="session token is missing or not valid"):
        client.predict(prompt="x", model="sdxl-base", token="", api_name="/text_to_image")
    with pytest.raises(AppError, match="session token is missing or not valid"):
        client.predict(token[:-2] + "xx", api_name="/balance")
    fresh = client.predict(token[:-2] + "xx", api_name="/session_start")
    assert fresh["token"] != token and "could not be verified" in fresh["message"]


def test_reports_and_review_through_the_api(client, token):
    _, info, _, _ = client.predict(prompt="noise", model="flux.1-dev", count=2, steps=1, token=token, api_name="/text_to_image")
    report = client.predict(token, info["request_id"], 1, "broken", "just noise", api_name="/report_image")
    assert report["status"] == "pending" and report["refund"] == 4
    with pytest.raises(AppError, match="already reported"):
        client.predict(token, info["request_id"], 1, "other", api_name="/report_image")
    with pytest.raises(AppError, match="Only QA/admin"):
        client.predict(token, api_name="/review_reports")
    with pytest.raises(AppError, match="admin key is not valid"):
        client.predict("", "wrong", api_name="/session_start")
    qa = client.predict("", ADMIN_KEY, api_name="/session_start")
    assert qa["unlimited"] is True and "review" in qa["unlocks"]
    pending = client.predict(qa["token"], api_name="/review_reports")
    assert report["id"] in [r["id"] for r in pending]
    client.predict(qa["token"], report["id"], True, api_name="/review_report")
    assert client.predict(token, api_name="/balance")["balance"] == 46


def test_bad_requests_get_clear_errors(client, token):
    cases = [
        (dict(prompt="   ", model="sdxl-base"), "Write a prompt first"),
        (dict(prompt="x", model="dall-e-9"), "dall-e-9 is not in the list of choices"),
        (dict(prompt="x", model="sdxl-base", aspect_ratio="21:9"), "'21:9'.* is not in the list of choices"),
        (dict(prompt="x", model="sdxl-base", resolution="4K"), "offers 1:1 at 1K, not 4K"),
        (dict(prompt="x", model="nano-banana-2"), "runs on Google Gemini API, and this deployment has no key"),
        (dict(prompt="x", model="sdxl-base", count=9), "greater than maximum value 8"),
    ]
    for kwargs, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(api_name="/text_to_image", token=token, **kwargs)
    assert client.predict(token, api_name="/balance")["balance"] == 50
