"""Every paid surface goes through the one runner, and a failure at any stage after the reservation refunds in full.

The surfaces run on the real tiny pipelines; faults are injected into the real components the runner drives (the
pipeline runtime, the output check, the file store, the ledger's capture), never by replacing the runner.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from pipelines.types import Task
from services.accounts.identity import HFUser
from services.creation.compare import CompareParams
from services.creation.text import TextToImageParams
from services.errors import UserError
from services.runs.runner import Runner

STEPS = 2


@dataclass
class World:
    services: object
    guest: object
    member: object
    figure: object
    other: object
    image: str  # a finished text-to-image request of the guest
    member_image: str


@pytest.fixture(scope="module")
def world(tmp_path_factory, registry, preview_runtime):
    from services.config import AppSettings
    from services.container import build_services

    data = tmp_path_factory.mktemp("paid-path")
    settings = AppSettings(data_dir=data, database_url=f"sqlite:///{data / 'playground.db'}", preview="force")
    services = build_services(settings, registry=registry, runtime=preview_runtime, heartbeat=False)
    guest = services.identity.start(None, ip="10.9.0.1").account
    member = services.identity.start(None, ip="10.9.0.2", hf_user=HFUser("900", "member")).account
    with services.db.begin() as conn:
        services.ledger.adjust(conn, guest.id, 1000, "test", "credits for every surface")
        services.ledger.adjust(conn, member.id, 1000, "test", "credits for every surface")

    def figure(name, seed):
        takes = services.figures.quick_takes(guest, {"archetype": "friend"}, model="sdxl-base", takes=1, steps=STEPS, seed=seed)
        return services.figures.save(guest, name, [takes.output.request_id], takes.output.request_id, 0)

    image = services.text.text_to_image(guest, TextToImageParams("a blue door", "sdxl-base", steps=STEPS, seed=3))
    member_image = services.text.text_to_image(member, TextToImageParams("a red kite", "sdxl-base", steps=STEPS, seed=4))
    yield World(services, guest, member, figure("Kit", 31), figure("Ash", 32), image.request_id, member_image.request_id)
    services.db.dispose()


# surface -> (who pays, the call, how many paid requests it makes, the task of each request's last stage)
SURFACES = {
    "text": ("guest", lambda w, s: s.text.text_to_image(w.guest, TextToImageParams("a lighthouse", "sdxl-base", steps=STEPS)), 1,
             [Task.TEXT_TO_IMAGE]),
    "text-image-to-image": ("guest", lambda w, s: s.text.text_to_image(
        w.guest, TextToImageParams("the lighthouse at night", "sdxl-base", steps=STEPS, init_image=str(w.figure.canonical_path))),
        1, [Task.IMAGE_TO_IMAGE]),
    "figure-quick": ("guest", lambda w, s: s.figures.quick_takes(w.guest, {"archetype": "mentor"}, model="sdxl-base", takes=1, steps=STEPS),
                     1, [Task.TEXT_TO_IMAGE]),
    "figure-custom": ("guest", lambda w, s: s.figures.custom_takes(w.guest, appearance="tall woman, grey eyes", model="sdxl-base",
                                                                     takes=1, steps=STEPS), 1, [Task.TEXT_TO_IMAGE]),
    "remix": ("guest", lambda w, s: s.remix.figure_remix(w.guest, prompt="reading in a library", model="qwen-image-edit",
                                                          figure_id=w.figure.id), 1, [Task.REFERENCE]),
    "edit": ("guest", lambda w, s: s.remix.edit_image(w.guest, request_id=w.image, index=0, instruction="paint the door red",
                                                       model="qwen-image-edit"), 1, [Task.EDIT]),
    "group": ("guest", lambda w, s: s.remix.group_image(w.guest, figure_ids=[w.figure.id, w.other.id], prompt="two friends at a campfire",
                                                         model="flux.2-dev"), 1, [Task.MULTI_REFERENCE]),
    "figure-to-video": ("guest", lambda w, s: s.video.figure_to_video(w.guest, w.figure.id, "wave", background="beach", model="ltx-video",
                                                                       aspect_ratio="1:1"), 1, [Task.IMAGE_TO_VIDEO]),
    "image-to-video": ("member", lambda w, s: s.video.image_to_video(w.member, w.member_image, 0, "smile-nod", model="ltx-video",
                                                                      aspect_ratio="1:1"), 1, [Task.IMAGE_TO_VIDEO]),
    "compare": ("guest", lambda w, s: s.compare.compare(w.guest, CompareParams("a lighthouse", ("sdxl-base", "flux.1-schnell"), seed=1)),
                2, [Task.TEXT_TO_IMAGE, Task.TEXT_TO_IMAGE]),
}


@pytest.fixture
def fast_video(monkeypatch, world):
    """Video entries run their default 30-40 steps; two steps are enough to exercise the path."""
    from dataclasses import replace

    original = Runner.prepare

    def prepare(self, account, run):
        stages = tuple(replace(st, request=replace(st.request, steps=STEPS)) if st.task.is_video else st for st in run.stages)
        object.__setattr__(run, "stages", stages)
        return original(self, account, run)

    monkeypatch.setattr(Runner, "prepare", prepare)


@pytest.fixture
def runs_seen(monkeypatch, world):
    seen = []
    original = world.services.runner.run

    def spy(account, run, *args, **kwargs):
        seen.append(run)
        return original(account, run, *args, **kwargs)

    monkeypatch.setattr(world.services.runner, "run", spy)
    return seen


@pytest.mark.parametrize("surface", list(SURFACES))
def test_every_paid_surface_goes_through_the_runner(world, fast_video, runs_seen, surface):
    who, call, requests, tasks = SURFACES[surface]
    services, account = world.services, getattr(world, who)
    before = services.ledger.balance(account.id)
    call(world, services)
    assert len(runs_seen) == requests, f"{surface} made {len(runs_seen)} runner call(s), expected {requests}"
    assert [run.final.task for run in runs_seen] == tasks
    quoted = sum(services.runner.quote(run).total for run in runs_seen)
    assert quoted > 0 and services.ledger.balance(account.id) == before - quoted == services.ledger.total(account.id)
    if surface == "figure-to-video":  # the start frame is a stage of the same run, priced with it
        assert [s.name for s in runs_seen[0].stages] == ["start_frame", "animate"]


def _fault_runtime_stage(which: str):
    def install(monkeypatch, services):
        original = services.runtime.run
        calls = {"n": 0}

        def run(entry, task, request, **kwargs):
            calls["n"] += 1
            if which == "all" or (which == "video" and task.is_video):
                raise RuntimeError(f"injected: pipeline stage {calls['n']} failed")
            return original(entry, task, request, **kwargs)

        monkeypatch.setattr(services.runtime, "run", run)

    return install


def _fault(target: str, attrs: tuple[str, ...], error: Exception):
    def install(monkeypatch, services):
        obj = {"check": services.jobs.safety, "store": services.store, "capture": services.ledger}[target]

        def broken(*args, **kwargs):
            raise error

        for attr in attrs:
            if hasattr(obj, attr):
                monkeypatch.setattr(obj, attr, broken)

    return install


FAULTS = {
    "run": _fault_runtime_stage("all"),
    "check": _fault("check", ("check_image", "check_images"), RuntimeError("injected: output check crashed")),
    "store": _fault("store", ("put",), OSError("injected: disk full")),
    "capture": _fault("capture", ("capture",), RuntimeError("injected: capture failed")),
}
CASES = [(s, f) for s in SURFACES for f in FAULTS] + [("figure-to-video", "run-second-stage")]


@pytest.mark.parametrize(("surface", "fault"), CASES, ids=[f"{s}:{f}" for s, f in CASES])
def test_a_failure_in_any_stage_refunds_in_full(world, fast_video, monkeypatch, surface, fault):
    who, call, requests, _ = SURFACES[surface]
    services, account = world.services, getattr(world, who)
    before_balance = services.ledger.balance(account.id)
    before_records = {r.id for r in services.history.list(account.id, include_failed=True, limit=1000)}
    if fault == "run-second-stage":
        _fault_runtime_stage("video")(monkeypatch, services)  # the start frame runs, the animation fails
    else:
        FAULTS[fault](monkeypatch, services)
    if surface == "compare":
        output = call(world, services)  # each model is its own request: failures are reported per row
        assert all(row.error and row.charged == 0 for row in output.rows)
    else:
        with pytest.raises(Exception) as raised:
            call(world, services)
        assert "injected" in str(raised.value) or isinstance(raised.value, UserError)
    assert services.ledger.balance(account.id) == before_balance == services.ledger.total(account.id)
    new = [r for r in services.history.list(account.id, include_failed=True, limit=1000) if r.id not in before_records]
    if (surface, fault) == ("edit", "check"):  # an edit checks its source like an upload, before anything is reserved
        requests = 0
    assert len(new) == requests and all(r.status == "failed" for r in new), [(r.status, r.error) for r in new]
    for record in new:
        kinds = [e["kind"] for e in reversed(services.ledger.entries(account.id, request_id=record.id))]
        assert kinds[0] == "reserve" and kinds[-1] == "refund" and "capture" not in kinds, kinds


def test_a_family_refuses_a_field_it_cannot_use(world, preview_runtime, registry):
    """Typed request fields: a face on FLUX, a reference-area cap on SDXL, an input image on text-to-image."""
    from dataclasses import replace

    from PIL import Image

    from pipelines.errors import UnsupportedOption
    from pipelines.types import FaceConditioning, GenerationRequest
    from services.errors import ModelRefused
    from services.runs.runner import PaidRun, Stage
    from services.safety.policy import Surface

    base = GenerationRequest(prompt="a lighthouse", width=1024, height=1024, steps=STEPS, guidance=3.5, seed=1)
    face = FaceConditioning((0.1,) * 512, scale=0.5)
    services, account = world.services, world.guest
    image = Image.new("RGB", (64, 64), "grey")
    cases = [
        ("flux.1-schnell", Task.TEXT_TO_IMAGE, replace(base, face=face), "a face to keep (face adapter)"),
        ("sdxl-base", Task.TEXT_TO_IMAGE, replace(base, max_reference_area=4096), "a reference-area cap"),
        ("z-image-turbo", Task.TEXT_TO_IMAGE, replace(base, reference_images=(image,)), "input images"),
        ("sdxl-base", Task.TEXT_TO_IMAGE, replace(base, strength=0.5), "an image-to-image strength"),
    ]
    for model, task, request, named in cases:
        entry = registry.get(model)
        with pytest.raises(UnsupportedOption, match=re.escape(f"{entry.name} cannot use {named} for {task.value}")):
            preview_runtime.run(entry, task, request)
        before = services.ledger.balance(account.id)
        records = len(services.history.list(account.id, include_failed=True, limit=1000))
        run = PaidRun(stages=(Stage("generate", entry, task, request, "1K"),), surface=Surface.IMAGE, replay={"model": model})
        with pytest.raises(ModelRefused, match=re.escape(named)):
            services.runner.run(account, run)
        assert services.ledger.balance(account.id) == before  # refused before anything is reserved
        assert len(services.history.list(account.id, include_failed=True, limit=1000)) == records
    # The fields a family does read pass: a face on SDXL, a reference cap on Qwen-Image-Edit.
    preview_runtime.check_options(registry.get("sdxl-base"), Task.TEXT_TO_IMAGE, replace(base, face=face))
    preview_runtime.check_options(registry.get("qwen-image-edit"), Task.EDIT, replace(base, reference_images=(image,), max_reference_area=4096))
