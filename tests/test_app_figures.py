"""Quick and Custom creation through gradio_client, then a restart on the same data dir."""
from __future__ import annotations

import io

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from .conftest import launch_app, stop_app


def test_figures_survive_a_restart(tmp_path, tiny_root):
    data_dir = tmp_path / "data"
    url, demo, services = launch_app(data_dir, tiny_root)
    try:
        client = Client(url, verbose=False)
        token = client.predict(api_name="/session_start")["token"]
        gallery, info, notice, bar = client.predict(
            archetype="romantic", hair_colour="auburn", eyes="hazel", prompt="", model="sdxl-base", takes=3, seed=9, token=token,
            api_name="/figure_quick",
        )
        assert len(gallery) == 3 and info["seeds"] == [9, 10, 11] and "hazel eyes" in info["prompt"]
        assert info["spec"]["choices"]["archetype"] == "romantic" and "balance now **47 credits**" in notice
        quick = client.predict(token, "Juno", info["request_id"], 1, api_name="/figure_save")
        assert quick["canonical_image"] == info["files"][1] and len(quick["takes"]) == 3

        gallery, custom_info, _, _ = client.predict(
            appearance="broad-shouldered man, shaved head, amber eyes", outfit="a rain-dark leather coat", style="hybrid",
            negative_prompt="", model="sdxl-base", takes=2, seed=-1, token=token, api_name="/figure_custom",
        )
        assert len(gallery) == 2 and len(set(custom_info["seeds"])) == 2
        custom = client.predict(token, "Brann", custom_info["request_id"], 0, api_name="/figure_save")
        with pytest.raises(AppError, match="Give the figure a name"):
            client.predict(token, "  ", custom_info["request_id"], 0, api_name="/figure_save")
        with pytest.raises(AppError, match="rule: adult_figures"):
            client.predict(appearance="a little girl with pigtails", outfit="", negative_prompt="", model="sdxl-base", token=token, api_name="/figure_custom")
    finally:
        stop_app(demo, services)

    url, demo, services = launch_app(data_dir, tiny_root)  # a restart on the same data dir
    try:
        client = Client(url, verbose=False)
        assert client.predict(token, api_name="/balance")["balance"] == 50 - 3 - 2
        listed = client.predict(token, api_name="/figures")
        assert [f["name"] for f in listed] == ["Brann", "Juno"]
        juno = client.predict(token, quick["id"], api_name="/figure")
        assert juno["canonical_image"] == quick["canonical_image"] and [t["seed"] for t in juno["takes"]] == [9, 10, 11]
        for take in juno["takes"]:
            assert take["file"].startswith("/outputs/")  # an app URL, never a server path
            with Image.open(io.BytesIO(httpx.get(url + take["file"], timeout=10).content)) as image:
                assert image.size == (896, 1152)
        assert client.predict(token, "brann", api_name="/figures")[0]["id"] == custom["id"]
        moved = client.predict(token, quick["id"], juno["takes"][2]["id"], api_name="/figure_set_canonical")
        assert moved["canonical_image"] == info["files"][2]
    finally:
        stop_app(demo, services)
