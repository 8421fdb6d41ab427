"""Project-level promises: README front matter and quick start, Spacefile, CI, import hygiene."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def pinned(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.lower().startswith(name.lower() + "=="):
            return line.split("==")[1]
    raise AssertionError(f"{name} is not pinned")


def test_readme_front_matter_matches_the_project(registry):
    meta = front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["hf_oauth"] is True
    assert str(meta["sdk_version"]) == pinned("gradio")
    assert str(meta["python_version"]).startswith("3.")
    assert meta["suggested_hardware"] and meta["suggested_storage"] and meta["title"]
    assert meta["models"] == registry.hub_repos()


def test_quick_start_is_two_command_lines_and_ci_runs_the_second():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", text, re.S)
    assert block, "README needs a Quick start bash block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 2
    assert "app.py" in lines[0] and "pytest" in lines[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert lines[1] in ci


def test_pins():
    assert pinned("torch") == "2.14.1" and pinned("torchvision") == "0.29.1"
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, f"unpinned requirement: {line}"


def test_spacefile_launches_the_same_app():
    spec = yaml.safe_load((ROOT / "Spacefile").read_text())
    assert spec["v"] == 0 and len(spec["micros"]) == 1
    micro = spec["micros"][0]
    assert micro["engine"] and "app.py" in micro["run"] and "$PORT" in micro["run"]
    env = {item["name"] for item in micro["presets"]["env"]}
    assert "PLAYGROUND_DATA_DIR" in env


def test_importing_every_module_loads_nothing_and_touches_no_network(tmp_path):
    modules = ["app"] + [
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for folder in ("pipelines", "services", "ui")
        for p in sorted((ROOT / folder).rglob("*.py"))
        if p.name != "__main__.py"
    ]
    script = f"""
import socket, sys
sys.path.insert(0, {str(ROOT)!r})
def refuse(*a, **k):
    raise AssertionError("network access at import time")
socket.socket.connect = refuse
socket.create_connection = refuse
import diffusers, transformers
def no_load(*a, **k):
    raise AssertionError("model loaded at import time")
diffusers.DiffusionPipeline.from_pretrained = no_load
transformers.PreTrainedModel.from_pretrained = no_load
import importlib
for name in {modules!r}:
    importlib.import_module(name)
print("imported", len({modules!r}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.iterdir()) == [], "importing wrote files into the working directory"
