"""The launched app's edges: file routes, upload limits, other users' outputs, refusals through the API."""
from __future__ import annotations

from pathlib import Path

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
    assert requests.get(f"{url}/gradio_api/file={own}", timeout=10).status_code == 200
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
        (dict(init_image=handle_file(str(fake))), "is not a PNG, JPEG, WEBP image"),
        (dict(init_image=handle_file(str(gif))), r"Invalid file type.*\.png"),  # gradio refuses the extension
        (dict(init_image=handle_file(str(disguised))), "is GIF; only PNG, JPEG, WEBP"),  # we refuse the contents
        (dict(prompt="a nude portrait"), r"rule: members_only"),
        (dict(prompt="tag, " * 210, prompt_style="tags"), r"rule: length_tags"),
    ]
    for extra, message in cases:
        kwargs = dict(prompt="a watercolour", model="sdxl-base", steps=1, token=token, api_name="/text_to_image")
        kwargs.update(extra)
        with pytest.raises(AppError, match=message):
            client.predict(**kwargs)
    assert client.predict(token, api_name="/balance")["balance"] == 50
    assert [e["kind"] for e in client.predict(token, api_name="/ledger")] == ["grant"]
    assert client.predict(token, api_name="/history") == []


def test_another_users_outputs_are_not_reachable_by_id(client, token):
    _, info, _, _ = client.predict(prompt="mine", model="sdxl-base", steps=1, token=token, api_name="/text_to_image")
    other = client.predict(api_name="/session_start")["token"]
    assert client.predict(other, api_name="/history") == []
    with pytest.raises(AppError, match="No generation"):
        client.predict(other, info["request_id"], 0, "broken", api_name="/report_image")
