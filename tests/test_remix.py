"""Figure Remix (reference path), edits, group shots, prices, identity scores and PNG settings reuse."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from PIL import Image

from pipelines.types import Task
from services.creation.text import TextToImageParams
from services.media.png import read_png_metadata
from services.creation.remix import RemixError


def make_figure(services, account, name="Kit", seed=31):
    takes = services.figures.quick_takes(account, {"archetype": "friend"}, model="sdxl-base", takes=2, steps=2, seed=seed)
    return services.figures.save(account, name, [takes.output.request_id], takes.output.request_id, 0)


@pytest.fixture
def spy_calls(monkeypatch):
    """Record what the real pipeline object for (model, task) is called with; the call runs unchanged."""

    def attach(services, model, task):
        calls: list[dict] = []
        pipe = services.runtime.pipeline(services.registry.get(model), task)
        original = type(pipe).__call__

        @functools.wraps(original)  # keeps __wrapped__: families inspect the pipeline module's globals
        def recording(self, *args, **kwargs):
            calls.append(kwargs)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(type(pipe), "__call__", recording)
        return calls

    return attach


def distance(received, path) -> float:
    """Mean absolute pixel difference after bringing both to the received size (families resize and crop
    references their own way, so exact equality is not expected; a different image is far off)."""
    received = received[0] if isinstance(received, list) else received
    with Image.open(path) as original:
        expected = original.convert("RGB").resize(received.size, Image.Resampling.BILINEAR)
    return float(np.abs(np.asarray(received.convert("RGB"), dtype=np.float32) - np.asarray(expected, dtype=np.float32)).mean())


def same_pixels(received, path, other=None) -> bool:
    near = distance(received, path)
    return near < 12 and (other is None or distance(received, other) > 2 * near + 5)


@pytest.mark.parametrize("model", ["qwen-image-edit", "flux.1-kontext-dev", "flux.2-dev"])
def test_reference_models_receive_the_canonical_image(make_services, spy_calls, model):
    services = make_services()
    account = services.identity.start(None, ip="10.4.0.1").account
    figure = make_figure(services, account)
    calls = spy_calls(services, model, Task.REFERENCE)
    output = services.remix.figure_remix(account, prompt="reading in a library", model=model, figure_id=figure.id,
                                         likeness=0.8, aspect_ratio="16:9", count=2, seed=5)
    assert len(output.files) == 2 and len(calls) == 2
    other_take = figure.takes[1]["file"]
    assert same_pixels(calls[0]["image"], figure.canonical_path, other_take), "the pipeline must get the canonical image"
    for path in output.files:
        with Image.open(path) as image:
            assert image.size == services.registry.get(model).sizes["16:9"]["1K"]
    # Setting another take canonical changes what Remix uses.
    services.figures.set_canonical(account, figure.id, figure.takes[1]["id"])
    services.remix.figure_remix(account, prompt="reading", model=model, figure_id=figure.id, seed=5)
    assert same_pixels(calls[-1]["image"], figure.takes[1]["file"], figure.canonical_path)


def test_edit_links_to_its_source_and_is_sfw(make_services, spy_calls):
    services = make_services()
    account = services.identity.start(None, ip="10.4.0.2").account
    source = services.text.text_to_image(account, TextToImageParams(prompt="a blue door", model="sdxl-base", steps=2, aspect_ratio="3:4"))
    calls = spy_calls(services, "qwen-image-edit", Task.EDIT)
    edited = services.remix.edit_image(account, request_id=source.request_id, index=0, instruction="paint the door red", model="qwen-image-edit")
    assert same_pixels(calls[0]["image"], source.files[0])
    assert edited.charged == 3  # Qwen-Image-Edit's own edit price (plans.toml), not a flat number
    with Image.open(edited.files[0]) as image:
        assert image.size == (864, 1152)  # the source's aspect ratio
    record = services.history.get(account.id, edited.request_id)
    assert record.request["context"]["edit_of"] == {"request_id": source.request_id, "index": 0}
    from services.safety.policy import PromptRefused

    with pytest.raises(PromptRefused, match="sfw_surface"):
        services.remix.edit_image(account, request_id=source.request_id, index=0, instruction="make her topless", model="qwen-image-edit")


def test_group_of_three_costs_three_times_and_receives_every_canonical(make_services, spy_calls):
    services = make_services()
    account = services.identity.start(None, ip="10.4.0.3").account
    figures = [make_figure(services, account, name, seed) for name, seed in (("A", 1), ("B", 2), ("C", 3))]
    calls = spy_calls(services, "flux.2-dev", Task.MULTI_REFERENCE)
    before = services.ledger.balance(account.id)
    output = services.remix.group_image(account, figure_ids=[f.id for f in figures], prompt="three friends at a campfire", model="flux.2-dev")
    assert output.charged == 3 * services.plans.prices.unit("flux.2-dev", Task.MULTI_REFERENCE) == 15
    assert services.ledger.balance(account.id) == before - 15
    images = calls[0]["image"]
    assert len(images) == 3 and all(same_pixels(img, f.canonical_path) for img, f in zip(images, figures))
    with Image.open(output.files[0]) as image:
        assert image.size == (2560, 1440)
    with pytest.raises(RemixError, match="Pick 2 or 3"):
        services.remix.group_image(account, figure_ids=[figures[0].id], prompt="alone", model="flux.2-dev")


def test_prices_and_refunds(make_services, registry):
    services = make_services()
    plans = services.plans
    flux = registry.get("flux.1-dev")
    assert plans.quote(flux, Task.TEXT_TO_IMAGE, "1K", 8).total == 8 * plans.prices.unit(flux.id, Task.TEXT_TO_IMAGE)
    pro = registry.get("flux.2-pro")
    assert plans.quote(pro, Task.TEXT_TO_IMAGE, "4K", 1).total == 2 * plans.quote(pro, Task.TEXT_TO_IMAGE, "2K", 1).total
    account = services.identity.start(None, ip="10.4.0.4").account
    figure = make_figure(services, account)
    before = services.ledger.balance(account.id)

    def fail(done, total):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        services.remix.figure_remix(account, prompt="x", model="qwen-image-edit", figure_id=figure.id, on_step=fail)
    assert services.ledger.balance(account.id) == before == services.ledger.total(account.id)


def test_identity_scores_with_the_tiny_face_pack(make_services, face_pack):
    services = make_services(face_pack=face_pack)
    account = services.identity.start(None, ip="10.4.0.5").account
    figure = make_figure(services, account)
    output = services.remix.figure_remix(account, prompt="on a beach", model="qwen-image-edit", figure_id=figure.id, count=2)
    for path in output.files:
        record = read_png_metadata(str(path))["record"]
        score = record["identity_score"]
        assert isinstance(score, float) and -1.0 <= score <= 1.0
        assert record["figure_ids"] == [figure.id] and record["model"] == "qwen-image-edit" and record["task"] == "reference"
        assert "revision" in record
    # An image without a face: a flat start image for Edit... scored directly against the figure.
    from services.creation.remix import identity_scores

    flat = Image.new("RGB", (512, 512), (90, 90, 90))
    reference = services.figures.reference(account, figure.id).embedding
    assert identity_scores(services.faces, reference, [flat]) == ["no face found"]
    assert identity_scores(None, reference, [flat]) is None


def test_a_png_from_here_fills_the_form(make_services, tmp_path):
    services = make_services()
    account = services.identity.start(None, ip="10.4.0.6").account
    params = TextToImageParams(prompt="a lantern on a pier", model="flux.1-dev", negative_prompt="blur", aspect_ratio="16:9",
                               resolution="2K", count=1, seed=77, steps=3, guidance=2.5, prompt_style="natural")
    output = services.text.text_to_image(account, params)
    meta = read_png_metadata(str(output.files[0]))["parameters"]
    assert (meta["prompt"], meta["seed"], meta["width"], meta["height"], meta["Model"]) == ("a lantern on a pier", 77, 1920, 1088, "flux.1-dev")
    found = services.text.settings_from_png(str(output.files[0]))
    # FLUX.1 [dev] takes no negative prompt: the PNG records what ran, so none comes back.
    assert found == {"prompt": "a lantern on a pier", "negative_prompt": "", "model": "flux.1-dev", "aspect_ratio": "16:9",
                     "resolution": "2K", "seed": 77, "steps": 3, "guidance": 2.5, "prompt_style": "natural"}
    a1111 = tmp_path / "a1111.png"
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a castle\nNegative prompt: fog\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 768x1344, Model: sd_xl_base")
    Image.new("RGB", (16, 16)).save(a1111, pnginfo=info)
    other = services.text.settings_from_png(str(a1111))
    assert other["prompt"] == "a castle" and other["aspect_ratio"] == "9:16" and other["seed"] == 5 and other["model"] is None
    plain = tmp_path / "plain.png"
    Image.new("RGB", (16, 16)).save(plain)
    from services.creation.text import InvalidRequest

    with pytest.raises(InvalidRequest, match="carries no generation settings"):
        services.text.settings_from_png(str(plain))


def test_sdxl_remix_goes_through_faceid(make_services, face_pack):
    services = make_services(face_pack=face_pack)
    account = services.identity.start(None, ip="10.4.0.7").account
    figure = make_figure(services, account)
    common = dict(prompt="portrait in a garden", model="sdxl-base", aspect_ratio="1:1", seed=12)
    base = services.text.text_to_image(account, TextToImageParams(**common, steps=2, count=1))
    # Steps follow the model default in Remix; match them for the comparison.
    steps = base.parameters["steps"]
    # keep_style off: the plain run below has no style fragments either (test_style_lock.py covers the lock)
    free = services.remix.figure_remix(account, figure_id=figure.id, likeness=0.0, keep_style=False, **common)
    close = services.remix.figure_remix(account, figure_id=figure.id, likeness=1.0, keep_style=False, **common)
    plain = services.text.text_to_image(account, TextToImageParams(**common, steps=free.parameters["steps"]))
    assert steps == 2 and free.parameters["ip_adapter_scale"] == 0.0 and close.parameters["ip_adapter_scale"] == 1.0

    def pixels(path):
        with Image.open(path) as image:
            return np.asarray(image)

    assert np.array_equal(pixels(free.files[0]), pixels(plain.files[0])), "likeness 0 must equal no adapter"
    assert not np.array_equal(pixels(close.files[0]), pixels(plain.files[0])), "likeness 1 must change the output"
    score = read_png_metadata(str(close.files[0]))["record"]["identity_score"]
    assert -1.0 <= score <= 1.0

    no_pack = make_services()  # the default dlib engine: it scores likeness, it cannot drive FaceID
    other = no_pack.identity.start(None, ip="10.4.0.8").account
    figure2 = make_figure(no_pack, other)
    with pytest.raises(RemixError, match=r"needs an ArcFace face pack \(PLAYGROUND_FACE_PACK\)"):
        no_pack.remix.figure_remix(other, figure_id=figure2.id, **common)
