"""The registry file validates on load and refuses bad entries with file, entry and field named."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.registry import InvalidSize, RegistryError, UnknownModel, UnsupportedTask, load_registry
from pipelines.types import Task

GOOD_ENTRY = """
[[models]]
id = "my-sdxl"
name = "My SDXL"
family = "sdxl"
tasks = ["text-to-image"]
source = { repo = "someone/my-sdxl", revision = "abc123" }
defaults = { steps = 30, guidance = 5.0 }
sizes = { "1:1" = { "1K" = [1024, 1024] } }
licence = { name = "Apache-2.0" }
gpu = { overhead_s = 10, step_s = 0.6 }
tiny = "sdxl"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def test_shipped_registry_declares_every_required_model(registry):
    repos = set(registry.hub_repos())
    for repo in [
        "stabilityai/stable-diffusion-xl-base-1.0",
        "playgroundai/playground-v2.5-1024px-aesthetic",
        "black-forest-labs/FLUX.1-dev",
        "black-forest-labs/FLUX.1-schnell",
        "black-forest-labs/FLUX.1-Kontext-dev",
        "black-forest-labs/FLUX.2-dev",
        "Tongyi-MAI/Z-Image-Turbo",
            "Tongyi-MAI/Z-Image",
        "Qwen/Qwen-Image-Edit",
        "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
        "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        "Lightricks/LTX-Video",
        "Qwen/Qwen3-4B-Instruct-2507",
        "Qwen/Qwen3-32B",
    ]:
        assert repo in repos
    remote = {e.id for e in registry if e.is_remote and not e.is_chat}
    assert remote == {"flux.2-pro", "hunyuan-image-3", "hunyuan-image-3-instruct", "hunyuan-image-3-edit", "nano-banana-2",
                      "nano-banana-2-edit", "kling-2.6-pro", "kling-2.6-pro-voice", "avatar-voice"}
    assert registry.get("playground-v2.5").defaults.scheduler == "EDMDPMSolverMultistepScheduler"
    assert registry.get("flux.1-dev").licence.non_commercial
    assert registry.get("hunyuan-image-3").licence.region_restricted
    families = {e.family for e in registry if not e.is_remote}
    assert {"sdxl", "flux", "flux-kontext", "flux2", "z-image", "qwen-image-edit", "wan-i2v", "wan-t2v", "ltx"} <= families
    assert registry.for_task(Task.IMAGE_TO_VIDEO) and registry.for_task(Task.TEXT_TO_VIDEO)


def test_good_entry_loads(tmp_path):
    registry = load_registry(write(tmp_path, GOOD_ENTRY))
    entry = registry.get("my-sdxl")
    assert entry.source.revision == "abc123"
    assert entry.size_for("1:1", "1K") == (1024, 1024)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("steps = 30", "steps = 0", "defaults.steps"),
        ('tasks = ["text-to-image"]', 'tasks = ["text-to-sculpture"]', "tasks.0"),
        ('tasks = ["text-to-image"]', 'tasks = ["image-to-video"]', "tasks"),
        ("[1024, 1024]", "[1020, 1024]", "sizes.1:1.1K"),
        ('"1:1" = {', '"2:1" = {', "sizes"),
        ('family = "sdxl"', 'family = "dalle"', "dalle"),
        ('tiny = "sdxl"', 'tiny = "nope"', "tiny"),
        ('source = { repo = "someone/my-sdxl", revision = "abc123" }', "source = { revision = 'x' }", "source"),
        ("tiny = \"sdxl\"", "tiny = \"sdxl\"\ncolour = 'red'", "colour"),
        ("gpu = { overhead_s = 10, step_s = 0.6 }\n", "", "gpu: local entries need their ZeroGPU timing"),
        ('tiny = "sdxl"', 'tiny = "sdxl"\nprompt_note = "' + "x" * 201 + '"', "prompt_note"),
    ],
)
def test_bad_field_is_named(tmp_path, old, new, field):
    assert old in GOOD_ENTRY
    path = write(tmp_path, GOOD_ENTRY.replace(old, new))
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    message = str(info.value)
    assert str(path) in message
    assert "entry 'my-sdxl'" in message
    assert field in message


def test_duplicate_ids_and_unknown_size_table(tmp_path):
    with pytest.raises(RegistryError, match="duplicate id"):
        load_registry(write(tmp_path, GOOD_ENTRY + GOOD_ENTRY))
    with pytest.raises(RegistryError, match=re.escape("no size table 'huge'")):
        load_registry(write(tmp_path, GOOD_ENTRY.replace('sizes = { "1:1" = { "1K" = [1024, 1024] } }', 'sizes = "huge"')))


def test_lookup_errors_are_clear(registry):
    with pytest.raises(UnknownModel, match="unknown model 'dall-e-9'; known models: sdxl-base"):
        registry.get("dall-e-9")
    with pytest.raises(UnsupportedTask, match="Z-Image Turbo cannot do image-to-video; models that can: .*wan2.1-i2v-480p"):
        registry.require("z-image-turbo", Task.IMAGE_TO_VIDEO)
    entry = registry.get("sdxl-base")
    with pytest.raises(InvalidSize, match="SDXL base 1.0 offers 16:9 at 1K, not 4K"):
        entry.size_for("16:9", "4K")
    with pytest.raises(InvalidSize, match="no 21:9 sizes"):
        entry.size_for("21:9", "1K")


def test_every_entry_says_how_to_prompt_it(registry, preview_runtime):
    """Prompt guidance is data on each entry, and the catalogue's JSON (what /models returns) carries it."""
    from services.accounts.plans import load_plans
    from services.catalogue import Catalogue

    rows = {row["id"]: row for row in Catalogue(registry, preview_runtime, load_plans()).models()}
    for entry in registry:
        assert rows[entry.id]["prompt_note"] == entry.prompt_note
        assert entry.prompt_note and len(entry.prompt_note) <= 200, entry.id
    assert {e.id: e.prompt_note for e in registry}["wan2.1-i2v-480p"].startswith("Describe the motion")


def test_serve_tables_default_validate_and_group(tmp_path, registry):
    """How a local entry runs on Ray Serve (pipelines/serve): without a `serve` table, the documented defaults; a bad one
    is refused naming its field; the entries of one group share replicas, so they must agree on everything else."""
    from pydantic import ValidationError

    from pipelines.registry import ModelEntry, ServeOptions

    entry = load_registry(write(tmp_path, GOOD_ENTRY)).get("my-sdxl")
    assert entry.serve is None and entry.serving == ServeOptions() and entry.serve_group == "my-sdxl"
    assert entry.serving.model_dump() == {
        "group": None, "num_gpus": 1.0, "num_cpus": 1.0, "min_replicas": 1, "max_replicas": 1, "target_ongoing_requests": 1.0,
        "max_ongoing_requests": 2, "max_models_per_replica": 1, "graceful_shutdown_timeout_s": 900.0,
    }
    with_serve = GOOD_ENTRY.replace('tiny = "sdxl"', 'tiny = "sdxl"\nserve = {}')
    for table, field in [
        ("{ num_gpus = -1 }", "serve.num_gpus"),
        ("{ min_replicas = 3, max_replicas = 2 }", "min_replicas (3) is above max_replicas (2)"),
        ("{ target_ongoing_requests = 4 }", "target_ongoing_requests (4) is above max_ongoing_requests (2)"),
        ("{ replicas = 2 }", "serve.replicas"),  # a misspelt key is refused, not silently ignored as Serve would
        ("{ group = 'Big GPU' }", "serve.group"),
    ]:
        with pytest.raises(RegistryError, match=re.escape(field)):
            load_registry(write(tmp_path, with_serve.replace("serve = {}", f"serve = {table}")))

    second = GOOD_ENTRY.replace('id = "my-sdxl"', 'id = "my-sdxl-2"')
    shared = (with_serve + second.replace('tiny = "sdxl"', 'tiny = "sdxl"\nserve = {}')).replace(
        "serve = {}", 'serve = { group = "sdxl", max_models_per_replica = 2, num_gpus = 0.5 }')
    grouped = load_registry(write(tmp_path, shared))
    assert {e.serve_group for e in grouped} == {"sdxl"} and grouped.get("my-sdxl-2").serving.max_models_per_replica == 2
    differing = shared.replace("num_gpus = 0.5 }", "num_gpus = 1 }", 1)
    with pytest.raises(RegistryError, match="entry 'my-sdxl-2': field 'serve': its group 'sdxl' is served with 'my-sdxl'"):
        load_registry(write(tmp_path, differing))

    remote = registry.get("flux.2-pro").model_dump(exclude_unset=True)
    with pytest.raises(ValidationError, match="serve: remote entries run at their provider"):
        ModelEntry.model_validate(dict(remote, serve={}))
