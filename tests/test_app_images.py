"""Remix, Edit and Group through gradio_client, each returning PNGs of the requested size."""
from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client.exceptions import AppError
from PIL import Image


def figure(client, token, name, seed):
    _, info, _, _ = client.predict(archetype="artist", prompt="", model="sdxl-base", takes=1, seed=seed, token=token, api_name="/figure_quick")
    return client.predict(token, name, info["request_id"], 0, api_name="/figure_save")


def size_of(item) -> tuple[int, int]:
    with Image.open(Path(item["image"])) as image:
        return image.size


def test_remix_edit_and_group_through_the_api(client, token):
    first, second = figure(client, token, "Ivy", 1), figure(client, token, "Oak", 2)
    gallery, info, notice, _ = client.predict(
        figure_id=first["id"], prompt="on a rooftop at dusk", model="qwen-image-edit", likeness=0.6, aspect_ratio="16:9",
        count=1, seed=4, face_photo=None, token=token, api_name="/figure_remix",
    )
    assert [size_of(g) for g in gallery] == [(1344, 768)] and info["parameters"]["likeness"] == 0.6
    assert "no face in the figure's image" in notice  # dlib (no face pack) finds no face in the tiny model's take

    edited, edit_info, _, _ = client.predict(info["request_id"], 0, "make it snow", "flux.1-kontext-dev", -1, token, api_name="/edit_image")
    assert [size_of(g) for g in edited] == [(1344, 768)] and edit_info["charged"] == 3

    group, group_info, _, _ = client.predict([first["id"], second["id"]], "two painters sharing a studio", "flux.2-dev",
                                             "16:9", 3, token, api_name="/group_image")
    assert [size_of(g) for g in group] == [(2560, 1440)] and group_info["charged"] == 2 * 5  # groups are 2K or 4K
    with pytest.raises(AppError, match="Pick 2 or 3"):
        client.predict([first["id"]], "alone", "flux.2-dev", "16:9", -1, token, api_name="/group_image")
    balance = client.predict(token, api_name="/balance")["balance"]
    assert balance == 50 - 1 - 1 - 3 - 3 - 10
