"""What the terminal shows: `python app.py` prints one block on stdout saying whether the offline preview is on (and
why), which output safety check and which face engine it uses; the tiny CLIP models take an ordinary prompt whole,
without transformers' or diffusers' truncation warnings."""
from __future__ import annotations

import json
import logging
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

import app as app_module
from pipelines import runtime as runtime_module
from pipelines.types import GenerationRequest, Task
from services.config import AppSettings
from services.container import build_services

from .conftest import ADMIN_KEY

LOCAL_MODELS = 15  # presets/models.toml: local (not API-only) entries: 13 image and video models, 2 chat models


def settings_for(tmp_path: Path, **overrides) -> AppSettings:
    options = dict(data_dir=tmp_path / "data", device="cpu", admin_secret=ADMIN_KEY, allow_downloads=False)
    return AppSettings(**{**options, **overrides})


def banner_for(settings: AppSettings, registry) -> str:
    services = build_services(settings, registry=registry, heartbeat=False)
    try:
        return app_module.startup_banner(services)
    finally:
        services.close()


def test_the_banner_says_preview_safety_check_and_face_engine(tmp_path, registry, capsys):
    """create() builds the app; announce() prints the block on stdout (nothing is loaded to say it)."""
    settings = settings_for(tmp_path, preview="force", safety_backend="none")
    _, _, services = app_module.create(settings)
    try:
        app_module.announce(services)
        engine = services.faces  # dlib's models where installed (requirements.txt), else none
    finally:
        services.close()
    out = capsys.readouterr().out
    assert out.startswith("Character Playground\n")
    local = sum(1 for entry in registry if not entry.is_remote)
    assert local == LOCAL_MODELS
    assert f"  offline preview: ON for all {local} local models (forced by --offline-preview or PLAYGROUND_PREVIEW=force)" in out
    assert "outputs are noise from tiny random models" in out
    assert "  safety check:    none: outputs are not checked" in out
    if engine is None:
        assert "  face engine:     none: identity features are off (set PLAYGROUND_FACE_PACK" in out
    else:
        assert f"  face engine:     {engine.name}\n" in out


def test_the_banner_says_why_models_run_as_the_preview(tmp_path, registry, monkeypatch):
    monkeypatch.setattr(runtime_module, "_repo_cached", lambda repo, revision, marker="model_index.json": False)  # no weights on this machine
    pack = tmp_path / "buffalo_test"
    pack.mkdir()
    (pack / "det_10g.onnx").write_bytes(b"")
    text = banner_for(settings_for(tmp_path, preview="auto", safety_backend="nudenet", face_pack=pack), registry)
    assert (f"offline preview: ON for all {LOCAL_MODELS} local models: their weights are not on this machine and downloads "
            "are off (PLAYGROUND_ALLOW_DOWNLOADS=0)") in text
    assert "safety check:    nudenet (NudeNet's ONNX detector, offline)" in text
    assert f"face engine:     insightface:buffalo_test (pack {pack})" in text and "will fail" not in text

    # one model with its weights in the Hugging Face cache: the preview is on for the others, named
    sdxl = registry.get("sdxl-base").source.repo
    monkeypatch.setattr(runtime_module, "_repo_cached", lambda repo, revision, marker="model_index.json": repo == sdxl)
    text = banner_for(settings_for(tmp_path, preview="auto", safety_backend="none"), registry)
    line = next(line for line in text.splitlines() if "offline preview" in line)
    assert f"ON for {LOCAL_MODELS - 1} of {LOCAL_MODELS} local models (playground-v2.5, " in line and "sdxl-base" not in line

    # every model with weights: off; forbidden: off, naming what is refused
    monkeypatch.setattr(runtime_module, "_repo_cached", lambda repo, revision, marker="model_index.json": True)
    assert f"offline preview: OFF: all {LOCAL_MODELS} local models have real weights" in banner_for(
        settings_for(tmp_path, preview="auto", safety_backend="none"), registry)
    assert "offline preview: OFF (PLAYGROUND_PREVIEW=forbid)\n" in banner_for(
        settings_for(tmp_path, preview="forbid", safety_backend="none"), registry)
    monkeypatch.setattr(runtime_module, "_repo_cached", lambda repo, revision, marker="model_index.json": False)
    text = banner_for(settings_for(tmp_path, preview="forbid", safety_backend="none"), registry)
    assert "offline preview: OFF (PLAYGROUND_PREVIEW=forbid); no weights for sdxl-base, " in text and "are refused" in text


def test_main_prints_the_banner_before_serving(tmp_path, monkeypatch, capsys):
    import gradio as gr

    launched: list[str] = []

    def launch(self, *args, **kwargs):
        launched.append(capsys.readouterr().out)  # what the terminal shows by the time the server would start

    monkeypatch.setattr(gr.Blocks, "launch", launch)
    monkeypatch.setenv("PLAYGROUND_ADMIN_SECRET", ADMIN_KEY)
    monkeypatch.setenv("PLAYGROUND_SAFETY", "none")
    monkeypatch.setenv("PLAYGROUND_DEVICE", "cpu")
    app_module.main(["--offline-preview", "--data-dir", str(tmp_path / "data")])
    assert len(launched) == 1
    assert re.search(r"^Character Playground\n  offline preview: ON for all \d+ local models \(forced", launched[0], re.M)
    assert "  safety check:    " in launched[0] and "  face engine:     " in launched[0]


# -- the tiny CLIP tokenizer -----------------------------------------------------------------------------------

ORDINARY = (  # 60 words, about 300 characters: a prompt real CLIP takes whole
    "a cheerful young explorer with freckles and curly red hair wearing a green jacket stands on a rocky cliff above "
    "a misty valley at sunrise golden light soft shadows detailed face sharp focus cinematic composition wide angle "
    "lens gentle breeze in the hair birds in the distance warm colour palette high detail painterly texture calm "
    "expression looking at the viewer"
)
TRUNCATION = re.compile(r"Token indices sequence length|truncated because", re.I)


@contextmanager
def library_messages():
    """Every warning transformers and diffusers log (their loggers do not propagate to the root) or warn."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    loggers = [logging.getLogger(name) for name in ("transformers", "diffusers")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield seen
        seen.extend(str(w.message) for w in caught)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.mark.parametrize("model", ["sdxl-base", "flux.1-dev"])
def test_an_ordinary_prompt_runs_on_the_tiny_clip_models_without_truncation_warnings(preview_runtime, registry, model, capfd):
    assert len(ORDINARY.split()) == 60
    entry = registry.get(model)
    folder = preview_runtime.ensure_tiny(entry)
    # the cause, at the source: the tokenizer keeps as many tokens as the text encoder has positions
    for tokenizer, encoder in (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")):
        if not (folder / encoder / "config.json").exists() or not (folder / tokenizer / "tokenizer_config.json").exists():
            continue
        config = json.loads((folder / encoder / "config.json").read_text())
        if config.get("model_type") != "clip_text_model":
            continue
        length = json.loads((folder / tokenizer / "tokenizer_config.json").read_text())["model_max_length"]
        assert length == config["max_position_embeddings"] >= 300, (tokenizer, length, config["max_position_embeddings"])

    request = GenerationRequest(prompt=ORDINARY, negative_prompt="blurry, lowres", width=512, height=512, steps=2, seed=1)
    capfd.readouterr()
    with library_messages() as seen:
        preview_runtime.run(entry, Task.TEXT_TO_IMAGE, request)
    err = capfd.readouterr().err
    assert not [m for m in seen if TRUNCATION.search(m)], seen
    assert not TRUNCATION.search(err), err

    # a prompt a real CLIP would cut too is still truncated, and said (the capture above does see these warnings)
    long = " ".join([ORDINARY] * 3)
    with library_messages() as seen:
        preview_runtime.run(entry, Task.TEXT_TO_IMAGE, GenerationRequest(prompt=long, width=512, height=512, steps=2, seed=1))
    assert [m for m in seen if "truncated because CLIP" in m], seen
