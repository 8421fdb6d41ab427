"""Preset QA (issue 29): the command over every preset on the tiny models, a broken presets folder named preset by
preset, --against, no charge, QA-only endpoints, and the HTML report in a browser."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib

import pytest

from tests.conftest import ADMIN_KEY, ROOT

PRESETS = ROOT / "presets"


def run_qa(tiny_root, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PLAYGROUND_TINY_DIR=str(tiny_root), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "services.qa", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)


def expected_counts() -> dict[str, int]:
    """Counted from the preset files themselves (not the runner's enumeration)."""
    load = lambda name: tomllib.loads((PRESETS / name).read_text(encoding="utf-8"))  # noqa: E731
    figures, images, video, loras, models = (load(n) for n in ("figures.toml", "image_presets.toml", "video.toml", "loras.toml", "models.toml"))
    tables = models.get("size_tables", {})
    model_cases = 0
    for entry in models["models"]:
        if entry["tasks"] == ["chat"]:  # language models are no QA case (no sizes; tests/test_chat*.py run them)
            continue
        sizes = tables[entry["sizes"]] if isinstance(entry["sizes"], str) else entry["sizes"]
        model_cases += len(next(iter(sizes.values())))
    return {
        # + the reference-sheet settings and the character limits
        "figures": len(figures["archetypes"]) + sum(len(t) for t in figures["options"].values()) + len(figures["styles"]) + 2,
        "images": sum(len(chips) for chips in images["tags"].values()) + sum(len(images[t]) for t in ("outfits", "actions", "scenes")),
        "video": sum(len(video[t]) for t in ("actions", "backgrounds", "outfits")),
        "loras": len(loras["loras"]),
        "models": model_cases,
    }


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, tiny_root):
    out = tmp_path_factory.mktemp("qa-good")
    started = time.perf_counter()
    done = run_qa(tiny_root, "--presets", "all", "--out", str(out))
    print(f"full QA run: {time.perf_counter() - started:.1f} s")
    return done, out


def test_the_full_run_passes_and_lists_every_preset(good_run):
    done, out = good_run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Total time:" in done.stdout
    result = json.loads((out / "qa.json").read_text())
    assert result["counts"] == expected_counts()
    assert result["account_kind"] == "qa"
    names = [c["name"] for c in result["cases"]]
    assert len(names) == len(set(names))
    ran = [c for c in result["cases"] if c["status"] == "pass" and c["files"]]
    assert ran and all(c["thumbnail"] and c["checks"]["size"] and c["checks"]["fragment"] for c in ran)
    skipped = [c for c in result["cases"] if c["status"] == "skip"]
    assert all(c["family"] == "models" and c["error"].startswith("skipped:") for c in skipped)
    assert (out / "qa.html").read_text().count("data:image/png;base64,") >= len(ran)


def test_a_broken_presets_folder_names_each_broken_preset(good_run, tmp_path, tiny_root):
    broken = tmp_path / "presets"
    shutil.copytree(PRESETS, broken)
    images = (broken / "image_presets.toml").read_text()
    images = images.replace('fragment = "wearing ornate silver plate armour with a flowing red cape"', "fragment = \"\"")
    images = images.replace('palette = ["#2f4a3a", "#b8cbbf"]', 'palette = ["green", "#b8cbbf"]')
    (broken / "image_presets.toml").write_text(images)
    video = (broken / "video.toml").read_text().replace('figure_model = "wan2.1-i2v-480p"', 'figure_model = "no-such-model"')
    (broken / "video.toml").write_text(video)
    _, good_out = good_run
    done = run_qa(tiny_root, "--presets", "images,video", "--presets-dir", str(broken), "--out", str(tmp_path / "out"),
                  "--against", str(good_out / "qa.json"))
    assert done.returncode == 1, done.stdout[-3000:]
    for name in ("images/outfits/armor", "images/scenes/forest", "video/defaults/figure_model"):
        assert f"FAIL {name}:" in done.stdout, done.stdout[-3000:]
    changes = done.stdout.split("Changes since", 1)[1]
    new = changes.split("Fixed:", 1)[0]
    assert "images/outfits/armor" in new and "images/scenes/forest" in new and "video/defaults/figure_model" in new
    assert "no-such-model" in done.stdout and "palette" in done.stdout


def test_qa_runs_charge_nothing(make_services):
    from services.qa import QARun

    services = make_services(admin_secret=ADMIN_KEY)
    visitor = services.identity.start(ip="10.0.0.1").account
    account = services.identity.start(admin_key=ADMIN_KEY).account
    result = QARun(services, account, "sdxl-base", ("loras",), PRESETS).run()
    assert result["failed"] == 0 and result["passed"] == expected_counts()["loras"]
    assert services.identity.account(account.id).unlimited
    assert services.identity.account(visitor.id).balance == visitor.balance


def test_qa_endpoints_are_for_qa_sessions_only(client):
    from gradio_client.exceptions import AppError

    visitor = client.predict(api_name="/session_start")["token"]
    for name, args in (("/qa_runs", {}), ("/qa_run", {"presets": "loras"}), ("/qa_report", {"run_id": "x"})):
        with pytest.raises(AppError, match="QA sessions only"):
            client.predict(token=visitor, api_name=name, **args)
    qa = client.predict(admin_key=ADMIN_KEY, api_name="/session_start")["token"]
    run_id = client.predict(token=qa, model="sdxl-base", presets="loras", api_name="/qa_run")["run_id"]
    for _ in range(300):
        runs = {r["run_id"]: r for r in client.predict(token=qa, api_name="/qa_runs")}
        if runs[run_id]["state"] != "running":
            break
        time.sleep(1)
    assert runs[run_id]["state"] == "done", runs[run_id]
    report = client.predict(token=qa, run_id=run_id, api_name="/qa_report")
    assert report["failed"] == 0 and report["counts"] == {"loras": expected_counts()["loras"]}


def test_the_html_report_opens_in_a_browser(good_run, artifacts):
    from tests.browser import browser_page

    _, out = good_run
    with browser_page(1400, 1000) as page:
        page.goto((out / "qa.html").as_uri())
        page.locator(".qa-report img").first.wait_for(state="visible", timeout=10_000)
        assert page.locator("tr.qa-pass").count() > 0
        page.screenshot(path=str(artifacts / "qa-report.png"))
