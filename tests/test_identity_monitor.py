"""The identity monitor on the default install's real dlib recogniser: SimRef of figure outputs in the record and the
PNG ("no face" where there is none), the copy-paste flag at the calibrated line (measured here on real photos), edit
chains with their drift, re-anchored edits (proved on the real pipeline's input), the figure page's listing (ordered
and paged in the database), videos' first frames, and both recognisers where a face pack is configured."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image, ImageEnhance, ImageOps

from pipelines.types import Task
from services.faces import monitor
from services.faces.engine import DlibFaceEngine, FaceEngine
from services.creation.figures import FigureError
from services.creation.identity import IdentityError
from services.creation.remix import RemixError

from .test_default_engines import ASTRONAUT, FACES, SKIMAGE, TOM, photo
from .test_remix import make_figure, same_pixels, spy_calls  # noqa: F401 - spy_calls is a fixture

PRESETS = monitor.load_identity_presets()
DLIB = PRESETS.engines["dlib"]
FACE_BOX = (175, 76, 265, 166)  # the astronaut's face, as dlib finds it


def pasted(background: Image.Image, scale: float, at: tuple[int, int]) -> Image.Image:
    """The astronaut's face (with a margin) pasted into another photo: what a model that copies the face makes."""
    x0, y0, x1, y1 = FACE_BOX
    face = ASTRONAUT.crop((x0 - 40, y0 - 40, x1 + 40, y1 + 40))
    face = face.resize((int(face.width * scale), int(face.height * scale)))
    out = background.copy()
    out.paste(face, at)
    return out


def copies() -> dict[str, Image.Image]:
    """The astronaut re-encoded, resized, relit or pasted elsewhere: the same face, copied."""
    import io

    def jpeg(image: Image.Image, quality: int) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")

    coffee = photo(SKIMAGE / "coffee.png")
    return {"mirrored": ImageOps.mirror(ASTRONAUT), "half size": ASTRONAUT.resize((256, 256)), "jpeg q20": jpeg(ASTRONAUT, 20),
            "brightened": ImageEnhance.Brightness(ASTRONAUT).enhance(1.4), "greyscale": ImageOps.grayscale(ASTRONAUT).convert("RGB"),
            "pasted into coffee": pasted(coffee, 1.0, (100, 150)), "pasted 1.5x": pasted(coffee, 1.5, (50, 50)),
            "pasted into camera": pasted(photo(SKIMAGE / "camera.png").resize((512, 512)), 0.8, (250, 200))}


@pytest.fixture
def scripted(monkeypatch):
    """Real photos in place of the tiny models' outputs, per (model, task), one per output in turn (None keeps the
    model's own output: noise, no face). The pipelines still run; only their pictures are replaced."""

    def install(services, script: dict[tuple[str, Task], list[Image.Image | None]]):
        original = services.runtime.run

        def run(entry, task, request, on_step=None, cancel=None):
            result = original(entry, task, request, on_step=on_step, cancel=cancel)
            queue = script.get((entry.id, task), [])
            images = []
            for image in result.images:
                picture = queue.pop(0) if queue else None
                images.append(image if picture is None else ImageOps.fit(picture, image.size))
            result.images = images
            return result

        monkeypatch.setattr(services.runtime, "run", run)

    return install


def real_figure(services, account, scripted, name="Eileen"):
    """A figure whose canonical image is a real photograph (scikit-image's astronaut); its other take is Tom Hanks."""
    scripted(services, {("sdxl-base", Task.TEXT_TO_IMAGE): [ASTRONAUT, TOM]})
    figure = make_figure(services, account, name)
    assert figure.has_embedding and figure.embedding_model == "dlib:resnet128"
    return figure


# -- the calibration ----------------------------------------------------------------------------------------------
def test_dlib_calibration_copies_reach_the_line_other_people_stay_far_below():
    """The numbers README and presets/identity.toml state, measured on the shipped photos: copies of the astronaut's
    face score at or above the copy-paste line; other people stay below dlib's same-person line."""
    engine = DlibFaceEngine()
    reference = engine.embed(ASTRONAUT)
    copied = {name: round(engine.similarity(reference, engine.embed(image)), 3) for name, image in copies().items()}
    people = [emb for _, emb in engine.detect(photo(FACES / "t1.jpg"))] + [engine.embed(TOM)]
    others = [round(engine.similarity(reference, emb), 3) for emb in people]
    between = [round(engine.similarity(a, b), 3) for i, a in enumerate(people) for b in people[i + 1:]]
    print("dlib SimRef: copies", copied, "other people", others, "other people to each other: max", max(between))
    assert min(copied.values()) >= DLIB.copy_paste, copied
    assert max(others + between) < DLIB.same_person < DLIB.same_person_typical < DLIB.copy_paste
    degraded = engine.similarity(reference, engine.embed(ASTRONAUT.resize((128, 128)).resize((512, 512))))
    assert degraded < DLIB.copy_paste  # a copy blurred this far reads as a re-drawn face: not flagged


def test_presets_are_validated_naming_the_field(tmp_path):
    text = monitor.DEFAULT_IDENTITY.read_text()
    bad = tmp_path / "identity.toml"
    bad.write_text(text.replace("copy_paste = 0.75", "copy_paste = 0.30"))
    with pytest.raises(monitor.IdentityPresetsError, match=r"identity\.toml: engines\.dlib: .*copy-paste line sits above"):
        monitor.load_identity_presets(bad)
    bad.write_text(text.replace("[engines.arcface]", "[engines.facenet]"))
    with pytest.raises(monitor.IdentityPresetsError, match=r"engines: .*calibrate exactly the engines"):
        monitor.load_identity_presets(bad)


def test_sim_ref_helper_uses_both_recognisers_with_a_face_pack(face_pack):
    dlib = DlibFaceEngine()
    plain = monitor.sim_ref(dlib, dlib.embed(ASTRONAUT), ImageOps.mirror(ASTRONAUT))
    assert plain["engine"] == "dlib:resnet128" and "arcface" not in plain and plain["score"] == plain["dlib"] > DLIB.copy_paste
    assert plain["copy_paste"] and plain["copy_paste_by"] == ["dlib"] and plain["faces"] == 1
    assert monitor.sim_ref(dlib, dlib.embed(ASTRONAUT), TOM)["copy_paste"] is False
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    assert monitor.sim_ref(dlib, dlib.embed(ASTRONAUT), noise) == {"engine": "dlib:resnet128", "faces": 0, "dlib": "no face",
                                                                  "score": None, "copy_paste": False}
    pack = FaceEngine(face_pack)
    both = monitor.sim_ref(pack, monitor.reference(pack, ASTRONAUT), ImageOps.mirror(ASTRONAUT))
    assert both["engine"].startswith("insightface:") and isinstance(both["arcface"], float) and both["score"] == both["arcface"]
    assert both["dlib"] == plain["dlib"]  # dlib scores beside ArcFace, from the canonical picture


# -- Remix on the default install ------------------------------------------------------------------------------------
def test_remix_records_dlib_simref_in_the_record_and_the_png(make_services, scripted):
    services = make_services()
    assert services.faces.name == "dlib:resnet128"  # the default install: no face pack
    account = services.identity.start(None, ip="10.9.0.1").account
    figure = real_figure(services, account, scripted)
    scripted(services, {("qwen-image-edit", Task.REFERENCE): [ImageOps.mirror(ASTRONAUT), None, TOM]})
    output = services.remix.figure_remix(account, prompt="on a beach", model="qwen-image-edit", figure_id=figure.id, count=3, seed=2)
    record = services.history.get(account.id, output.request_id).parameters
    copied, faceless, other = record["sim_ref"]
    assert copied["figure_id"] == figure.id and copied["engine"] == "dlib:resnet128" and "arcface" not in copied
    assert copied["dlib"] >= DLIB.copy_paste and copied["copy_paste"] is True
    assert faceless["dlib"] == "no face" and faceless["score"] is None and faceless["copy_paste"] is False
    assert other["dlib"] < DLIB.same_person and other["copy_paste"] is False
    assert len(record["identity_scores"]) == 3 and record["identity_scores"][1] == "no face found"  # still recorded
    for path, expected in zip(output.files, record["sim_ref"]):
        with Image.open(path) as png:  # Pillow's own reading of the PNG's text chunks
            chunk = json.loads(png.text["playground"])
        assert chunk["sim_ref"] == expected and chunk["figure_ids"] == [figure.id]


def test_group_records_one_simref_per_figure(make_services, scripted):
    services = make_services()
    account = services.identity.start(None, ip="10.9.0.2").account
    eileen = real_figure(services, account, scripted)
    scripted(services, {("sdxl-base", Task.TEXT_TO_IMAGE): [TOM, ASTRONAUT]})
    tom = make_figure(services, account, "Tom", 32)
    pair = Image.new("RGB", (1024, 512))
    pair.paste(ASTRONAUT, (0, 0))
    pair.paste(TOM.resize((300, 300)), (620, 100))
    scripted(services, {("flux.2-dev", Task.MULTI_REFERENCE): [pair]})
    output = services.remix.group_image(account, figure_ids=[eileen.id, tom.id], prompt="two friends", model="flux.2-dev",
                                        aspect_ratio="16:9")
    (entry,) = output.parameters["sim_ref"]
    assert entry["faces"] == 2 and entry["figures"][eileen.id]["dlib"] > 0.9 and entry["figures"][tom.id]["dlib"] > 0.6
    listed = services.monitor.figure_outputs(account, tom.id)
    assert [o["request_id"] for o in listed["outputs"]] == [output.request_id] and listed["outputs"][0]["surface"] == "Group"


# -- edits: the chain and re-anchoring -------------------------------------------------------------------------------
def test_an_edit_of_an_edit_shows_its_drift_and_reanchor_edits_the_canonical(make_services, scripted, spy_calls):
    services = make_services()
    account = services.identity.start(None, ip="10.9.0.3").account
    figure = real_figure(services, account, scripted)
    blurred = ASTRONAUT.resize((160, 160)).resize((512, 512))
    scripted(services, {("qwen-image-edit", Task.REFERENCE): [ASTRONAUT.resize((300, 300))],
                        ("qwen-image-edit", Task.EDIT): [ImageEnhance.Brightness(ASTRONAUT).enhance(1.3), blurred, TOM]})
    remix = services.remix.figure_remix(account, prompt="in a library", model="qwen-image-edit", figure_id=figure.id, seed=1)
    first = services.remix.edit_image(account, request_id=remix.request_id, index=0, instruction="warmer light", model="qwen-image-edit")
    second = services.remix.edit_image(account, request_id=first.request_id, index=0, instruction="softer focus", model="qwen-image-edit")
    # each edit's record knows its source and its SimRef (and the figure it keeps, inherited along the chain)
    record = services.history.get(account.id, second.request_id)
    assert record.request["context"]["edit_of"] == {"request_id": first.request_id, "index": 0}
    assert record.parameters["figure_ids"] == [figure.id] and record.parameters["sim_ref"][0]["figure_id"] == figure.id

    chain = services.monitor.chain(account, second.request_id)
    steps = chain["steps"]
    assert [s["kind"] for s in steps] == ["canonical", "Remix", "edit", "edit"]
    assert [s["request_id"] for s in steps[1:]] == [remix.request_id, first.request_id, second.request_id]
    assert steps[0]["sim_ref"]["score"] == 1.0 and Path(steps[0]["file"]) == figure.canonical_path
    scores = [s["sim_ref"]["score"] for s in steps]
    assert scores[1:] == [services.history.get(account.id, r).parameters["sim_ref"][0]["dlib"]
                          for r in (remix.request_id, first.request_id, second.request_id)]
    assert scores[3] < scores[2] and all(s["drift"] == round(1 - s["sim_ref"]["score"], 4) for s in steps)
    assert steps[3]["change"] == round(scores[3] - scores[2], 4) and chain["engines"] == ["dlib"]

    # Re-anchor: the next edit starts from the canonical image, not the picked (drifted) edit; the pipeline shows it.
    calls = spy_calls(services, "qwen-image-edit", Task.EDIT)
    services.remix.edit_image(account, request_id=second.request_id, index=0, instruction="softer focus", model="qwen-image-edit", seed=7)
    assert same_pixels(calls[-1]["image"], second.files[0], figure.canonical_path), "without re-anchor: the picked edit"
    anchored = services.remix.edit_image(account, request_id=second.request_id, index=0, instruction="softer focus",
                                         model="qwen-image-edit", seed=7, reanchor=True)
    assert same_pixels(calls[-1]["image"], figure.canonical_path, second.files[0]), "re-anchored: the canonical image"
    take = figure.canonical
    record = services.history.get(account.id, anchored.request_id)
    assert record.request["context"]["reanchor"] == {"request_id": take["request_id"], "index": take["index"]}
    assert record.request["context"]["edit_of"] == {"request_id": second.request_id, "index": 0}  # what was picked
    restarted = services.monitor.chain(account, anchored.request_id)["steps"]
    assert [s["kind"] for s in restarted] == ["canonical", "edit"] and restarted[1]["reanchored"]

    # an image of no figure cannot be re-anchored, and has no chain
    from services.creation.text import TextToImageParams

    plain = services.text.text_to_image(account, TextToImageParams(prompt="a door", model="sdxl-base", steps=2))
    with pytest.raises(RemixError, match="Re-anchor edits the figure's canonical image"):
        services.remix.edit_image(account, request_id=plain.request_id, index=0, instruction="x", model="qwen-image-edit", reanchor=True)
    with pytest.raises(IdentityError, match="not made from one of your figures"):
        services.monitor.chain(account, plain.request_id)


# -- the figure page -------------------------------------------------------------------------------------------------
def test_the_figure_page_lists_outputs_lowest_first_paged_in_the_database(make_services, scripted, monkeypatch):
    services = make_services()
    account = services.identity.start(None, ip="10.9.0.4").account
    figure = real_figure(services, account, scripted)
    scripted(services, {("qwen-image-edit", Task.REFERENCE): [ImageOps.mirror(ASTRONAUT), None, TOM, ASTRONAUT.resize((200, 200))]})
    remix = services.remix.figure_remix(account, prompt="at the fair", model="qwen-image-edit", figure_id=figure.id, count=4, seed=3)
    recorded = services.history.get(account.id, remix.request_id).parameters["sim_ref"]
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(services.db.engine, "before_cursor_execute", seen)
    try:
        listed = services.monitor.figure_outputs(account, figure.id)
    finally:
        sa.event.remove(services.db.engine, "before_cursor_execute", seen)
    scores = [o["sim_ref"] for o in listed["outputs"]]
    assert scores[:3] == sorted(r["dlib"] for r in recorded if r["score"] is not None) and scores[3] is None
    assert listed["outputs"][3]["note"] == "no face" and listed["no_face"] == 1 and listed["total"] == 4
    assert [o["copy_paste"] for o in listed["outputs"]] == [False, False, True, False] and listed["copy_paste"] == 1
    assert listed["calibration"]["dlib"]["copy_paste"] == DLIB.copy_paste and "arcface" not in listed["calibration"]
    assert all(Path(o["file"]).is_file() and o["surface"] == "Remix" for o in listed["outputs"])
    listing = [s for s in statements if "output_identity" in s and "ORDER BY" in s]
    assert listing and "LIMIT" in listing[0] and "parameters" not in listing[0] and "request" not in listing[0].replace("request_id", "")

    monkeypatch.setattr(monitor, "load_identity_presets", lambda: PRESETS.model_copy(update={"page_size": 3}))
    second = services.monitor.figure_outputs(account, figure.id, page=2)
    assert second["pages"] == 2 and [o["sim_ref"] for o in second["outputs"]] == [None]
    other = services.identity.start(None, ip="10.9.0.5").account
    with pytest.raises(FigureError):
        services.monitor.figure_outputs(other, figure.id)


def test_a_figure_video_records_simref_of_its_first_frame(make_services, scripted, monkeypatch):
    services = make_services()
    account = services.identity.start(None, ip="10.9.0.6").account
    figure = real_figure(services, account, scripted)
    original = services.runtime.run

    def run(entry, task, request, on_step=None, cancel=None):
        result = original(entry, task, request, on_step=on_step, cancel=cancel)
        if result.videos:
            result.videos[0][0] = ImageOps.fit(ASTRONAUT, result.videos[0][0].size)
        return result

    monkeypatch.setattr(services.runtime, "run", run)
    output = services.video.figure_to_video(account, figure.id, "wave", model="ltx-video", aspect_ratio="9:16",
                                            resolution="480p", seed=4)
    (entry,) = output.parameters["sim_ref"]
    assert entry["figure_id"] == figure.id and entry["dlib"] > 0.6
    listed = services.monitor.figure_outputs(account, figure.id)["outputs"]
    assert listed[0]["media"] == "video" and listed[0]["surface"] == "Video" and listed[0]["file"].endswith(".png")


def test_a_characters_main_image_made_from_a_figure_records_simref(make_services, scripted):
    from services.creation.characters import AvatarChoice

    from .test_characters import GOOD

    services = make_services()
    account = services.identity.start(None, ip="10.9.0.7").account
    figure = real_figure(services, account, scripted)
    scripted(services, {("qwen-image-edit", Task.REFERENCE): [ASTRONAUT.resize((300, 300))],
                        ("qwen-image-edit", Task.EDIT): [TOM]})
    character = services.characters.create(account, GOOD, "private", figure_id=figure.id,
                                           avatar=AvatarChoice("generate", model="qwen-image-edit", seed=2))
    made = services.history.get(account.id, character.avatar["generation_id"]).parameters["sim_ref"]
    assert made[0]["figure_id"] == figure.id and made[0]["dlib"] > DLIB.same_person
    edited = services.characters.edit_main(account, character.id, "make it rain", "qwen-image-edit", seed=1)
    item = services.characters.gallery(account, edited.id)["items"][-1]
    (entry,) = services.history.get(account.id, item["request_id"]).parameters["sim_ref"]
    assert entry["figure_id"] == figure.id and entry["dlib"] < DLIB.same_person  # the edit lost her face: it shows
