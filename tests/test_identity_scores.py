"""Identity scores with the tiny face pack: one score per figure of a group, faces assigned by best match, shown with
a synthetic image holding two known faces; "no face found" and "several faces" where that is the case."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.tiny.faces import build_tiny_face_pack
from services.creation.remix import group_identity_scores, identity_scores
from services.faces.engine import FaceEngine, similarity
from services.media.png import read_png_metadata

from .test_remix import make_figure

SIDE = 640  # the detector's input size: face boxes sit at fixed fractions of it (see pipelines/tiny/faces.py)
FACE_1, FACE_2 = (192, 320), (384, 512)  # x ranges of the two-face pack's boxes at this size
MARGIN = 30


@pytest.fixture(scope="module")
def two_face_engine(tmp_path_factory):
    return FaceEngine(build_tiny_face_pack(tmp_path_factory.mktemp("two-faces"), faces=2))


def textured(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8))


def with_faces(left: Image.Image, right: Image.Image, seed: int = 99) -> Image.Image:
    """A synthetic group picture: `left`'s face region in the first face's place, `right`'s in the second's."""
    canvas = np.asarray(textured(seed)).copy()
    a0, a1 = FACE_1[0] - MARGIN, FACE_1[1] + MARGIN
    shift = FACE_2[0] - FACE_1[0]
    canvas[:, a0:a1] = np.asarray(left)[:, a0:a1]
    canvas[:, a0 + shift:a1 + shift] = np.asarray(right)[:, a0:a1]
    return Image.fromarray(canvas)


def test_a_group_of_two_reports_two_scores_mapped_to_the_right_figures(two_face_engine):
    ivy, oak = textured(1), textured(2)
    references = {"ivy": two_face_engine.embed(ivy), "oak": two_face_engine.embed(oak)}
    assert similarity(references["ivy"], references["oak"]) < 0.9  # two different faces to tell apart
    # Oak stands on the left and Ivy on the right: the assignment follows the faces, not the order of the figures.
    [scores] = group_identity_scores(two_face_engine, references, [with_faces(oak, ivy)])
    assert scores["faces"] == 2
    assert scores["scores"]["ivy"] > 0.99 and scores["scores"]["oak"] > 0.99
    assert scores["boxes"]["oak"][0] < scores["boxes"]["ivy"][0]  # oak matched the left face, ivy the right one
    [swapped] = group_identity_scores(two_face_engine, references, [with_faces(ivy, oak)])
    assert swapped["boxes"]["ivy"][0] < swapped["boxes"]["oak"][0]


def test_missing_and_extra_faces_are_named(two_face_engine, face_pack):
    one_face = FaceEngine(face_pack)
    ivy, oak = textured(1), textured(2)
    flat = Image.new("RGB", (SIDE, SIDE), (90, 90, 90))
    references = {"ivy": two_face_engine.embed(ivy), "oak": two_face_engine.embed(oak), "ash": two_face_engine.embed(textured(3))}
    [three] = group_identity_scores(two_face_engine, references, [with_faces(oak, ivy)])
    assert three["scores"]["ash"] == "no face found" and three["scores"]["ivy"] > 0.99
    [nobody] = group_identity_scores(two_face_engine, references, [flat])
    assert nobody == {"faces": 0, "scores": {"ivy": "no face found", "oak": "no face found", "ash": "no face found"}, "boxes": {}}
    # One figure, a picture of two: the best match, flagged.
    [several] = identity_scores(two_face_engine, references["ivy"], [with_faces(oak, ivy)])
    assert several["note"] == "several faces" and several["faces"] == 2 and several["score"] > 0.99
    assert identity_scores(one_face, one_face.embed(ivy), [ivy, flat]) == [pytest.approx(1.0, abs=1e-4), "no face found"]


def test_a_group_image_stores_one_score_per_figure(make_services, face_pack):
    services = make_services(face_pack=face_pack)
    account = services.identity.start(None, ip="10.8.0.1").account
    first, second = make_figure(services, account, "Ivy", 31), make_figure(services, account, "Oak", 32)
    output = services.remix.group_image(account, figure_ids=[first.id, second.id], prompt="two friends at a fair",
                                        model="flux.2-dev", aspect_ratio="1:1")
    record = read_png_metadata(output.files[0].read_bytes())["record"]
    score = record["identity_score"]
    assert set(score["scores"]) == {first.id, second.id} and score["faces"] <= 1  # the tiny pack sees one face at most
    matched = [s for s in score["scores"].values() if s != "no face found"]
    assert len(matched) == score["faces"]
