"""Video through the service layer on tiny Wan I2V and LTX I2V: MP4s, stages, charges, gates."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from PIL import Image

from pipelines.registry import load_registry
from pipelines.types import Task
from services.accounts.identity import HFUser
from services.media.mp4 import probe_mp4
from services.safety.policy import FeatureLocked
from services.creation.video import VideoError


def figure_for(services, account, seed=21):
    takes = services.figures.quick_takes(account, {"archetype": "explorer"}, model="sdxl-base", takes=1, steps=2, seed=seed)
    return services.figures.save(account, "Scout", [takes.output.request_id], takes.output.request_id, 0)


@pytest.fixture
def spy(monkeypatch):
    """Record the `image` each real pipeline object is called with (the call itself runs unchanged)."""
    seen: list[Image.Image] = []

    def attach(services, model):
        entry = services.registry.get(model)
        pipe = services.runtime.pipeline(entry, Task.IMAGE_TO_VIDEO)
        original = type(pipe).__call__

        @functools.wraps(original)  # keeps __wrapped__: families inspect the pipeline module's globals
        def recording(self, *args, **kwargs):
            seen.append(kwargs["image"])
            return original(self, *args, **kwargs)

        monkeypatch.setattr(type(pipe), "__call__", recording)
        return seen

    return attach


@pytest.mark.parametrize("model", ["wan2.1-i2v-480p", "ltx-video"])
def test_figure_to_video_starts_from_the_canonical_image(make_services, spy, model):
    services = make_services()
    account = services.identity.start(None, ip="10.3.0.1").account
    figure = figure_for(services, account)
    seen = spy(services, model)
    output = services.video.figure_to_video(account, figure.id, "wave", model=model, aspect_ratio="9:16", resolution="480p", seed=4)
    entry = services.registry.get(model)
    info = probe_mp4(output.video)
    assert (info.width, info.height) == entry.sizes["9:16"]["480p"]
    assert info.frames == output.parameters["num_frames"] and info.fps == entry.defaults.fps and info.codec.startswith("h264")
    assert output.video.read_bytes()[4:8] == b"ftyp"
    with Image.open(figure.canonical_path) as canonical:
        expected = np.asarray(canonical.convert("RGB").resize(seen[0].size))
    assert np.array_equal(np.asarray(seen[0].convert("RGB")), expected), "the pipeline must receive the canonical image"
    assert [s["stage"] for s in output.parameters["stages"]] == ["animate"]
    assert output.charged == services.plans.prices.unit(entry.id, Task.IMAGE_TO_VIDEO) and services.ledger.balance(account.id) == 50 - 1 - services.plans.prices.unit(entry.id, Task.IMAGE_TO_VIDEO)
    with Image.open(output.poster) as poster:
        assert poster.size == (info.width, info.height)
    record = services.history.list(account.id)[0]
    assert record.task == "image-to-video" and record.files == [output.video]


def test_a_background_makes_the_start_frame_first_and_charges_both(make_services, spy):
    services = make_services()
    account = services.identity.start(None, ip="10.3.0.2").account
    figure = figure_for(services, account)
    seen = spy(services, "wan2.1-i2v-480p")
    quote = services.video.quote("wan2.1-i2v-480p", "16:9", "480p", staged=True)
    assert quote.total == 3 + 20 and "start frame" in quote.text()
    progress: list[tuple[int, int]] = []
    output = services.video.figure_to_video(
        account, figure.id, "dance", background="beach", outfit="casual", seed=8, on_step=lambda d, t: progress.append((d, t))
    )
    totals = {t for _, t in progress}
    dones = [d for d, _ in progress]
    assert len(totals) == 1 and dones == sorted(dones) and dones[-1] == totals.pop(), "one progress bar across both stages"
    start, animate = output.parameters["stages"]
    assert start["stage"] == "start_frame" and start["model"] == "qwen-image-edit" and "sunlit beach" in start["prompt"]
    assert animate["stage"] == "animate" and animate["model"] == "wan2.1-i2v-480p" and "dances" in animate["prompt"]
    with Image.open(services.store.path(start["file"])) as frame:
        expected = np.asarray(frame.convert("RGB").resize(seen[0].size))
    assert np.array_equal(np.asarray(seen[0].convert("RGB")), expected), "stage 2 must animate the stage-1 frame"
    assert output.charged == 23 and services.ledger.balance(account.id) == 50 - 1 - 23
    kinds = [(e["kind"], e["amount"]) for e in services.ledger.entries(account.id, request_id=output.request_id)]
    assert sorted(kinds) == [("capture", 0), ("reserve", -23)]

    steps = []

    def fail_in_stage_two(done, total):
        steps.append((done, total))
        if done > start["steps"]:
            raise RuntimeError("out of memory while animating")

    before = services.ledger.balance(account.id)
    with pytest.raises(RuntimeError, match="animating"):
        services.video.figure_to_video(account, figure.id, "dance", background="beach", seed=9, on_step=fail_in_stage_two)
    assert services.ledger.balance(account.id) == before == services.ledger.total(account.id)
    failed = services.history.list(account.id, include_failed=True)[0]
    assert failed.status == "failed" and failed.files == []


def test_action_is_required(make_services):
    services = make_services()
    account = services.identity.start(None, ip="10.3.0.3").account
    figure = figure_for(services, account)
    with pytest.raises(VideoError, match="Pick an Action: one of wave, smile-nod"):
        services.video.figure_to_video(account, figure.id, "")
    with pytest.raises(VideoError, match="Action 'moonwalk' is not one of"):
        services.video.figure_to_video(account, figure.id, "moonwalk")
    with pytest.raises(VideoError, match="Background 'mars' is not one of"):
        services.video.figure_to_video(account, figure.id, "wave", background="mars")
    assert services.ledger.balance(account.id) == 49 == services.ledger.total(account.id)


def test_guests_cannot_use_image_to_video_or_video_prompts(make_services):
    services = make_services()
    guest = services.identity.start(None, ip="10.3.0.4").account
    figure = figure_for(services, guest)
    source = services.history.list(guest.id)[0]
    with pytest.raises(FeatureLocked, match="Image to Video is for members"):
        services.video.image_to_video(guest, source.id, 0, "wave")
    with pytest.raises(FeatureLocked, match="Prompts on video is for members"):
        services.video.figure_to_video(guest, figure.id, "wave", prompt="golden hour")
    assert services.ledger.balance(guest.id) == 49 == services.ledger.total(guest.id)
    assert len(services.history.list(guest.id, include_failed=True)) == 1



@pytest.mark.parametrize("model, size", [("wan2.1-i2v-480p", (624, 624)), ("ltx-video", (512, 512))])
def test_members_animate_their_images(make_services, spy, model, size):
    from services.creation.text import TextToImageParams

    services = make_services()
    member = services.identity.start(None, ip="10.3.0.5", hf_user=HFUser("77", "m")).account
    image = services.text.text_to_image(member, TextToImageParams(prompt="a red kite", model="sdxl-base", steps=2, count=2))
    seen = spy(services, model)
    output = services.video.image_to_video(member, image.request_id, 1, "smile-nod", prompt="gentle breeze", model=model, aspect_ratio="1:1")
    meta = probe_mp4(output.video)
    assert (meta.width, meta.height) == size and meta.frames == output.parameters["num_frames"]
    assert "gentle breeze" in output.parameters["prompt"]
    with Image.open(image.files[1]) as chosen:
        expected = np.asarray(chosen.convert("RGB").resize(seen[0].size))
    assert np.array_equal(np.asarray(seen[0].convert("RGB")), expected), "the pipeline must receive the chosen image"
    with pytest.raises(VideoError, match="Pick one of your generated images"):
        services.video.image_to_video(member, image.request_id, 5, "wave")


TEXT_TO_VIDEO = [e.id for e in load_registry() if Task.TEXT_TO_VIDEO in e.tasks and not e.is_remote]


@pytest.mark.parametrize("model", TEXT_TO_VIDEO)
def test_members_make_a_video_from_text(make_services, model):
    """Text to Video (members): every local text-to-video entry of the registry runs; guests are refused before
    anything is paid; the MP4 has the entry's size, frames and fps, and the price is the plans' quote."""
    services = make_services()
    guest = services.identity.start(None, ip="10.3.0.6").account
    with pytest.raises(FeatureLocked, match="Prompts on video is for members"):
        services.video.text_to_video(guest, "a kite over the sea", model=model)
    assert services.ledger.balance(guest.id) == 50
    member = services.identity.start(None, ip="10.3.0.7", hf_user=HFUser("78", "m")).account
    before = services.ledger.balance(member.id)
    with pytest.raises(VideoError, match="Describe the video"):
        services.video.text_to_video(member, "  ", model=model)
    output = services.video.text_to_video(member, "a red kite climbing over a grey sea, slow pan", model=model,
                                          aspect_ratio="16:9", seed=3)
    entry = services.registry.get(model)
    info = probe_mp4(output.video)
    assert (info.width, info.height) == entry.sizes["16:9"]["480p"] and info.fps == entry.defaults.fps
    assert info.frames == output.parameters["num_frames"] and output.poster is not None
    quote = services.video.text_quote(model, "16:9")
    assert output.charged == quote.total > 0 and services.ledger.balance(member.id) == before - quote.total
    assert services.history.get(member.id, output.request_id).task == Task.TEXT_TO_VIDEO.value

