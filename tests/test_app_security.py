"""The launched app's edges: file routes, upload limits, other users' outputs, refusals through the API."""
from __future__ import annotations

from pathlib import Path

import re

import httpx
import pytest
import requests
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from .test_safety import bomb_png

ROOT = Path(__file__).resolve().parent.parent


def test_file_routes_serve_only_the_output_folder(app_server, client, token):
    url, services = app_server
    _, info, _, _ = client.predict(prompt="a key", model="sdxl-base", steps=1, token=token, api_name="/text_to_image")
    own = info["files"][0]
    assert own.startswith("/outputs/") and requests.get(f"{url}{own}", timeout=10).status_code == 200  # an app URL
    assert requests.get(f"{url}/outputs/../playground.db", timeout=10).status_code == 404
    assert requests.get(f"{url}/outputs/{'0' * 2}/{'0' * 64}.png", timeout=10).status_code == 404
    data_dir = services.settings.data_dir.resolve()
    db_file = data_dir / "playground.db"
    assert db_file.exists()
    tiny = next(services.settings.tiny_root.rglob("*.json"))
    probes = [
        "app.py",
        "README.md",
        str(ROOT / "app.py"),
        "../app.py",
        "..%2Fapp.py",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/etc/passwd",
        str(db_file),
        f"{services.settings.outputs_dir}/../playground.db",
        f"{services.settings.outputs_dir}/%2e%2e/playground.db",
        str(tiny),
        f"{data_dir}/gradio-tmp/../playground.db",
    ]
    for probe in probes:
        response = requests.get(f"{url}/gradio_api/file={probe}", timeout=10)
        assert response.status_code in (403, 404), (probe, response.status_code)


def test_an_upload_over_the_limit_gets_413(app_server):
    url, services = app_server
    limit = services.safety_file.uploads.max_bytes
    response = requests.post(f"{url}/gradio_api/upload", files={"files": ("big.png", b"\0" * (limit + 1))}, timeout=60)
    assert response.status_code == 413


def test_refused_uploads_and_prompts_through_the_api_charge_nothing(client, token, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    gif = tmp_path / "a.gif"
    Image.new("RGB", (8, 8)).save(gif)
    disguised = tmp_path / "disguised.png"
    disguised.write_bytes(gif.read_bytes())
    cases = [
        (dict(init_image=handle_file(str(bomb))), "declares 400 megapixels"),
        # the upload route itself refuses what is not an image, by its bytes (415), before gradio stores anything
        (dict(init_image=handle_file(str(fake))), r"fake.png is not an image; only PNG, JPEG, WEBP images \(and JSON or CHARX character cards\) are accepted"),
        (dict(init_image=handle_file(str(gif))), r"a.gif is GIF; only PNG, JPEG, WEBP"),
        (dict(init_image=handle_file(str(disguised))), "disguised.png is GIF; only PNG, JPEG, WEBP"),
        (dict(prompt="a nude portrait"), r"rule: members_only"),
        (dict(prompt="tag, " * 210, prompt_style="tags"), r"rule: length_tags"),
    ]
    for extra, message in cases:
        kwargs = dict(prompt="a watercolour", model="sdxl-base", steps=1, token=token, api_name="/text_to_image")
        kwargs.update(extra)
        with pytest.raises((AppError, httpx.HTTPStatusError)) as refused:
            client.predict(**kwargs)
        text = refused.value.response.json()["detail"] if isinstance(refused.value, httpx.HTTPStatusError) else str(refused.value)
        assert re.search(message, text), (message, text)
    assert client.predict(token, api_name="/balance")["balance"] == 50
    assert [e["kind"] for e in client.predict(token, api_name="/ledger")] == ["grant"]
    assert client.predict(token, api_name="/history") == []


def test_another_users_outputs_are_not_reachable_by_id(client, token):
    _, info, _, _ = client.predict(prompt="mine", model="sdxl-base", steps=1, token=token, api_name="/text_to_image")
    other = client.predict(api_name="/session_start")["token"]
    assert client.predict(other, api_name="/history") == []
    with pytest.raises(AppError, match="No generation"):
        client.predict(other, info["request_id"], 0, "broken", api_name="/report_image")


def test_the_upload_route_takes_only_images_within_a_per_network_budget(tmp_path, tiny_root):
    """Three uploads an hour in this deployment: the fourth from the same network is refused (429), a non-image
    never (415), and gradio sweeps its temp folder of old uploads."""
    import io

    from .conftest import launch_app, stop_app

    safety = tmp_path / "safety.toml"
    text = (ROOT / "presets" / "safety.toml").read_text()
    safety.write_text(text.replace("per_network_files_per_hour = 60", "per_network_files_per_hour = 3"))
    url, demo, services = launch_app(tmp_path / "data", tiny_root, safety_path=safety)
    try:
        png = io.BytesIO()
        Image.new("RGB", (8, 8), "red").save(png, format="PNG")

        def upload(name: str, data: bytes, forwarded: str | None = None):
            headers = {"X-Forwarded-For": forwarded} if forwarded else {}
            return requests.post(f"{url}/gradio_api/upload", files={"files": (name, data)}, headers=headers, timeout=30)

        assert upload("notes.txt", b"just text").status_code == 415
        assert "only PNG, JPEG, WEBP images" in upload("notes.png", b"just text").json()["detail"]
        assert upload("bundle.zip", b"PK\x05\x06" + b"\x00" * 18).status_code == 415  # an empty zip is no CHARX
        assert upload("card.json", b'{"name": "Old Tom"}').status_code == 200  # character cards: JSON ...
        assert upload("card.charx", b"PK\x03\x04" + b"\x00" * 26).status_code == 200  # ... and CHARX
        for i in range(1):
            assert upload(f"ok{i}.png", png.getvalue()).status_code == 200
        refused = upload("one-more.png", png.getvalue())
        assert refused.status_code == 429 and "Upload limit reached for your network" in refused.json()["detail"]
        assert upload("spoofed.png", png.getvalue(), forwarded="198.51.100.1").status_code == 429  # the header is not trusted
        keep_s = services.safety_file.uploads.keep_minutes * 60
        assert demo.delete_cache == (max(60, keep_s // 4), keep_s)
    finally:
        stop_app(demo, services)
