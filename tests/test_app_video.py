"""Video through gradio_client: guests are refused what the UI hides, members animate their images."""
from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client.exceptions import AppError

from services.media.mp4 import probe_mp4


def make_figure(client, token):
    _, info, _, _ = client.predict(archetype="friend", prompt="", model="sdxl-base", takes=1, token=token, api_name="/figure_quick")
    return client.predict(token, "Robin", info["request_id"], 0, api_name="/figure_save")


def test_guests_are_refused_image_to_video_and_video_prompts(client, token):
    figure = make_figure(client, token)
    history = client.predict(token, api_name="/history")
    with pytest.raises(AppError, match="Image to Video is for members"):
        client.predict(history[0]["id"], 0, "wave", "", "wan2.1-i2v-480p", "16:9", -1, token, api_name="/image_to_video")
    with pytest.raises(AppError, match="Prompts on video is for members"):
        client.predict(figure["id"], "wave", "", "", "at sunset", "wan2.1-i2v-480p", "16:9", -1, token, api_name="/figure_to_video")
    # An unknown Action is refused by the Action picker itself, listing the presets.
    with pytest.raises(AppError, match="moonwalk.*not in the list of choices.*'wave'"):
        client.predict(figure["id"], "moonwalk", "", "", "", "wan2.1-i2v-480p", "16:9", -1, token, api_name="/figure_to_video")
    assert client.predict(token, api_name="/balance")["balance"] == 49

    video, info, notice, bar = client.predict(
        figure_id=figure["id"], action="laugh", background="", outfit="", prompt="", model="ltx-video",
        aspect_ratio="1:1", seed=3, token=token, api_name="/figure_to_video",
    )
    path = Path(video["video"] if isinstance(video, dict) else video)
    meta = probe_mp4(path)
    assert (meta.width, meta.height) == (512, 512) and meta.frames == info["parameters"]["num_frames"]
    assert info["charged"] == 8 and "balance now **41 credits**" in notice
