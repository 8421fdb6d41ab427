"""README's API claims hold through gradio_client: /figure_loras pins LoRAs with README's own example (a list of
{id, weight}) and a remix applies them; /models carries every model's prices as presets/plans.toml publishes them;
README's /group_image example runs as written; Custom starts on the same inexpensive, commercially usable model as
Quick."""
from __future__ import annotations

import re
import tomllib

import pytest

from tests.conftest import ADMIN_KEY, ROOT


def readme_call(name: str) -> str:
    """README's example call of an endpoint: the `client.predict(...)` expression that names it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r'client\.predict\([^()]*?api_name="/' + name + r'"\)', text, re.S)
    assert match, f"README has no example of /{name}"
    return match.group(0)


@pytest.fixture(scope="module")
def qa_with_figures(client):
    token = client.predict(admin_key=ADMIN_KEY, api_name="/session_start")["token"]  # unlimited credits for the walk
    figures = []
    for name in ("Ada Quill", "Bo Harrow"):
        takes = client.predict(model="sdxl-base", takes=1, token=token, api_name="/figure_quick")
        figures.append(client.predict(token, name, takes[1]["request_id"], 0, api_name="/figure_save"))
    return token, figures


def test_readme_figure_loras_example_pins_two_loras_and_a_remix_applies_them(client, qa_with_figures):
    token, (figure, _) = qa_with_figures
    example = readme_call("figure_loras")
    pinned = eval(example, {"client": client, "figure": figure, "token": token})  # noqa: S307 - README's own line
    assert [(p["id"], p["weight"]) for p in pinned["loras"]] == [("kontext-ghibli", 0.8), ("kontext-3d-chibi", 0.5)]
    _, info, _, _ = client.predict(figure_id=figure["id"], prompt="on a rooftop at dusk", model="flux.1-kontext-dev",
                                   token=token, api_name="/figure_remix")
    applied = str(info["parameters"].get("loras"))
    assert "kontext-ghibli" in applied and "kontext-3d-chibi" in applied, info["parameters"]


def test_models_carry_the_published_prices(client):
    plans = tomllib.loads((ROOT / "presets" / "plans.toml").read_text(encoding="utf-8"))["prices"]
    multiplier = plans["resolution_multiplier"]
    for model in client.predict(api_name="/models"):
        published = plans["models"][model["id"]]
        if model["tasks"] == ["chat"]:  # a language model: priced per message, no sizes
            assert model["prices"] == {"chat": {"message": published["output"]}} and model["sizes"] == {}, model["id"]
            continue
        tiers = {t for ratio in model["sizes"].values() for t in ratio}
        base = min(multiplier[t] for t in tiers)
        for task in model["tasks"]:
            unit = published.get(task, published["output"])
            assert model["prices"][task] == {t: unit * max(1, multiplier[t] // base) for t in tiers}, (model["id"], task)


def test_readme_group_example_runs_as_written(client, qa_with_figures):
    token, (figure, other) = qa_with_figures
    example = readme_call("group_image")
    group = eval(example, {"client": client, "figure": figure, "other": other, "token": token})  # noqa: S307 - README's own line
    gallery, info = group[0], group[1]
    assert len(gallery) == 1 and info["request_id"] and info["files"], info  # a QA session: charged 0


def test_custom_starts_on_quicks_model(client, app_server):
    _, services = app_server
    token = client.predict(api_name="/session_start")["token"]
    quick = client.predict(takes=1, token=token, api_name="/figure_quick")[1]
    custom = client.predict(appearance="a tall adult with a grey braid", takes=1, token=token, api_name="/figure_custom")[1]
    models = {quick["parameters"]["model"], custom["parameters"]["model"]}
    assert len(models) == 1, models  # the same default for the same (photoreal) register
    entry = services.catalogue.get(models.pop())
    assert not entry.licence.non_commercial and not entry.is_remote
    register = services.figures.presets.styles["photoreal"].models
    cheapest = min(services.catalogue.unit_price(services.catalogue.get(m), "text-to-image") for m in register)
    assert services.catalogue.unit_price(entry, "text-to-image") == cheapest


def test_readme_research_example_runs_as_written(app_server):
    """README's Research example, run as written against the test app (only its address changed)."""
    url, services = app_server
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Research"):]
    block = section[section.index("```python") + len("```python"):]
    block = block[: block.index("```")].replace('Client("http://127.0.0.1:7860/")', f'Client("{url}/", verbose=False)')
    scope: dict = {}
    exec(compile(block, "README.md (Research)", "exec"), scope)  # noqa: S102 - README's own example
    assert scope["quote"]["cells"] == 8 and scope["grid"]["status"] == "done" and scope["grid"]["counts"]["done"] == 8
    assert str(scope["parquet"]).endswith(".parquet")
