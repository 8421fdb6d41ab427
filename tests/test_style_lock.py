"""Style lock: a figure's style register is applied by default to Remix, Edit, Group and Figure-to-Video, a visible
choice overrides it, and the output's metadata records both cases."""
from __future__ import annotations

import pytest

from pipelines.types import Task
from services.media.png import read_png_metadata

from .test_remix import make_figure, spy_calls  # noqa: F401  (fixture)


@pytest.fixture
def db_url(tmp_path):  # the paid path's database rules are tested on both databases elsewhere
    return f"sqlite:///{tmp_path / 'playground.db'}"


def photoreal_figure(services, account):
    figure = make_figure(services, account)
    assert figure.style == "photoreal"
    return figure, services.figure_presets.styles["photoreal"]


def test_remix_carries_the_register_and_override_removes_it(make_services, spy_calls):
    services = make_services()
    account = services.identity.start(None, ip="10.6.0.1").account
    figure, register = photoreal_figure(services, account)
    calls = spy_calls(services, "qwen-image-edit", Task.REFERENCE)
    locked = services.remix.figure_remix(account, prompt="reading in a library", model="qwen-image-edit", figure_id=figure.id, seed=3)
    assert calls[-1]["prompt"].startswith("reading in a library") and register.positive in calls[-1]["prompt"]
    record = read_png_metadata(locked.files[0].read_bytes())["record"]
    assert record["style_register"] == {"style": "photoreal", "label": register.label, "locked": True,
                                        "fragments": register.positive, "negative": register.negative}
    free = services.remix.figure_remix(account, prompt="reading in a library", model="qwen-image-edit", figure_id=figure.id, seed=3,
                                       keep_style=False)
    assert calls[-1]["prompt"] == "reading in a library"
    record = read_png_metadata(free.files[0].read_bytes())["record"]
    assert record["style_register"] == {"style": "photoreal", "label": register.label, "locked": False}
    assert services.history.get(account.id, free.request_id).request["context"]["remix"]["keep_style"] is False


def test_edit_group_and_video_keep_the_register_unless_overridden(make_services, spy_calls):
    services = make_services()
    account = services.identity.start(None, ip="10.6.0.2").account
    figure, register = photoreal_figure(services, account)
    other = make_figure(services, account, name="Ash", seed=32)
    remix = services.remix.figure_remix(account, prompt="on a pier", model="qwen-image-edit", figure_id=figure.id, seed=1)

    edits = spy_calls(services, "qwen-image-edit", Task.EDIT)
    edited = services.remix.edit_image(account, request_id=remix.request_id, index=0, instruction="make it rain", model="qwen-image-edit")
    assert edits[-1]["prompt"] == f"make it rain; keep the photoreal style: {register.positive}"
    assert edited.parameters["style_register"]["locked"] is True
    services.remix.edit_image(account, request_id=remix.request_id, index=0, instruction="make it rain", model="qwen-image-edit",
                              keep_style=False)
    assert edits[-1]["prompt"] == "make it rain"

    groups = spy_calls(services, "flux.2-dev", Task.MULTI_REFERENCE)
    group = services.remix.group_image(account, figure_ids=[figure.id, other.id], prompt="two friends at a fair", model="flux.2-dev")
    assert register.positive in groups[-1]["prompt"] and group.parameters["style_register"]["style"] == "photoreal"

    video = services.video.figure_to_video(account, figure.id, "wave", model="ltx-video", aspect_ratio="1:1")
    animate = video.parameters["stages"][0]
    assert register.positive in animate["prompt"] and video.parameters["style_register"]["locked"] is True
    free = services.video.figure_to_video(account, figure.id, "wave", model="ltx-video", aspect_ratio="1:1", keep_style=False)
    assert register.positive not in free.parameters["stages"][0]["prompt"]
    assert free.parameters["style_register"] == {"style": "photoreal", "label": register.label, "locked": False}
