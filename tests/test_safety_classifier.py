"""The transformers classifier backend, on a tiny random ViT of the class real NSFW classifiers use."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from services.safety.policy import load_safety_file
from services.safety.output import ClassifierChecker, NudeNetChecker, OpenNsfwChecker, Unchecked, build_checker


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=37, id2label={0: "normal", 1: "nsfw"}, label2id={"normal": 0, "nsfw": 1},
    )
    folder = tmp_path_factory.mktemp("tiny-nsfw-vit")
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_classifier_scores_come_from_the_model(tiny_vit):
    from transformers import ViTForImageClassification, ViTImageProcessor

    image = Image.new("RGB", (50, 70), (200, 120, 40))
    checker = ClassifierChecker(tiny_vit, {"nsfw": 0.5})
    detections = {d.label: d.score for d in checker.detect(image)}
    assert set(detections) == {"normal", "nsfw"}
    assert detections["normal"] + detections["nsfw"] == pytest.approx(1.0)
    model = ViTForImageClassification.from_pretrained(tiny_vit).eval()
    inputs = ViTImageProcessor.from_pretrained(tiny_vit)(images=image, return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits.softmax(-1)[0]
    assert detections["nsfw"] == pytest.approx(float(expected[1]), abs=1e-6)


def test_classifier_thresholds_decide(tiny_vit):
    image = Image.new("RGB", (40, 40), "white")
    nsfw = {d.label: d.score for d in ClassifierChecker(tiny_vit, {}).detect(image)}["nsfw"]
    assert ClassifierChecker(tiny_vit, {"nsfw": nsfw - 1e-4}).check_image(image).flagged
    assert not ClassifierChecker(tiny_vit, {"nsfw": nsfw + 1e-4}).check_image(image).flagged
    assert not ClassifierChecker(tiny_vit, {"normal": 1.01}).check_image(image).flagged


def test_backend_selection(tiny_vit, tmp_path):
    output = load_safety_file().output
    local = dict(output, classifier=dict(output["classifier"], source=str(tiny_vit)))
    assert isinstance(build_checker(local, "classifier"), ClassifierChecker)
    assert isinstance(build_checker(local, "none"), Unchecked)
    assert isinstance(build_checker(local, "auto"), OpenNsfwChecker)  # the default (requirements.txt), NudeNet or not
    if NudeNetChecker.available():
        assert isinstance(build_checker(local, "nudenet"), NudeNetChecker)  # only when asked for
    missing = dict(output, classifier=dict(output["classifier"], source=str(tmp_path / "absent")))
    with pytest.raises(ValueError, match="could not be loaded"):
        build_checker(missing, "classifier")
    with pytest.raises(ValueError, match="unknown safety backend"):
        build_checker(local, "magic")
