"""The typed API boundary and records that cannot be poisoned.

Extreme values sent as an attacker would (gradio_client and raw HTTP with a NaN literal) are refused before any work
with a message naming the parameter, nothing is charged, and /history keeps loading; rows poisoned before these
checks existed are repaired by a migration.
"""
from __future__ import annotations

import json
import time

import httpx
import pytest
import sqlalchemy as sa
from gradio_client import Client
from gradio_client.exceptions import AppError

from services.accounts.db import Database
from services.accounts.migrations import MIGRATIONS
from tests.conftest import launch_app, stop_app


def raw_call(url: str, api_name: str, body: str) -> tuple[str, object]:
    """POST a hand-written JSON body to gradio's call API: (event kind, the data or error message)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        posted = http.post(f"/gradio_api/call/{api_name}", content=body, headers={"Content-Type": "application/json"})
        posted.raise_for_status()
        stream = http.get(f"/gradio_api/call/{api_name}/{posted.json()['event_id']}").text
    lines = stream.splitlines()
    kind = [line.split(":", 1)[1].strip() for line in lines if line.startswith("event:")][-1]
    data = [line.split(":", 1)[1].strip() for line in lines if line.startswith("data:")][-1]
    return kind, json.loads(data) if data not in ("", "null") else data


def positional(api: dict, name: str, **values) -> list:
    """An endpoint's full positional data list: the given values, every other parameter's default."""
    params = api[f"/{name}"]["parameters"]
    return [values.get(p["parameter_name"], p["parameter_default"]) for p in params]


@pytest.fixture(scope="module")
def api(client):
    return client.view_api(return_format="dict", print_info=False)["named_endpoints"]


def test_extreme_values_are_refused_naming_the_parameter(app_server, client, api):
    url, services = app_server
    token = client.predict(api_name="/session_start")["token"]
    _, made, _, _ = client.predict(prompt="a lighthouse", model="sdxl-base", steps=1, token=token, api_name="/text_to_image")
    before = client.predict(token, api_name="/balance")["balance"]
    cases = [
        ("/text_to_image", dict(prompt="a lighthouse", model="sdxl-base", seed=-(2**64), token=token), r"^seed: .* is less than minimum value -1"),
        ("/text_to_image", dict(prompt="a lighthouse", model="sdxl-base", seed=2**32, token=token), r"^seed: 4294967296 is greater than"),
        ("/text_to_image", dict(prompt="a lighthouse", model="sdxl-base", guidance=1e308, token=token), r"^guidance: .* is greater than maximum value 30"),
        ("/text_to_image", dict(prompt="a lighthouse", model="sdxl-base", steps=True, token=token), r"^steps must be an integer from 0 to 200"),
        ("/text_to_image", dict(prompt=["a", "list"], model="sdxl-base", token=token), r"^prompt must be text"),
        ("/report_image", dict(token=token, request_id=made["request_id"], index=2**63), r"^index: 9223372036854775808 is greater than"),
        ("/edit_image", dict(request_id=made["request_id"], index=-5, instruction="red door", token=token), r"^index: -5 is less than"),
        ("/figure_custom", dict(appearance="a tall adult", takes=99, token=token), r"^takes: 99 is greater than maximum value 4"),
        ("/character_create", dict(token=token, fields={"name": 5}), r"^fields must be an object of at most 50 text fields"),
        ("/character_create", dict(token=token, opening_messages=[5]), r"^opening_messages must be a list of at most 50 text items"),
        ("/ledger", dict(token=token, limit=10**9), r"^limit: 1000000000 is greater than maximum value 1000"),
        ("/balance", dict(token="tok\u00e9n-\u2603"), r"session token is missing or not valid"),  # non-ASCII token
    ]
    for name, kwargs, message in cases:
        with pytest.raises(AppError) as refused:
            client.predict(**kwargs, api_name=name)
        assert __import__("re").search(message, str(refused.value)), (name, str(refused.value))
        assert "Generation failed" not in str(refused.value)
    # NaN and Infinity cannot be sent by a well-behaved JSON client; a raw body can carry them.
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = json.dumps({"data": positional(api, "text_to_image", prompt="a lighthouse", model="sdxl-base", guidance="GUIDANCE",
                                              token=token)}).replace('"GUIDANCE"', literal)
        kind, message = raw_call(url, "text_to_image", body)
        assert kind == "error" and "guidance must be a number from -1 to 30" in json.dumps(message), (literal, message)
    assert client.predict(token, api_name="/balance")["balance"] == before  # nothing charged
    history = client.predict(token, api_name="/history")
    assert [h["request"]["seed"] for h in history] == [-1]  # only the valid request, stored as sent
    assert all(e["kind"] in ("grant", "reserve", "capture") for e in client.predict(token, api_name="/ledger"))


def _poison(db_url: str, outputs) -> tuple[str, str]:
    """A database at schema 4 with one account whose finished generation holds values no JSON encoder accepts."""
    from services.media.storage import OutputStore

    db = Database(db_url)
    db.migrate(MIGRATIONS[:4])
    png = OutputStore(outputs).put(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16, ".png")  # any file: only the record matters
    account_id, request_id = "v-poisoned", "poisonedrequest0001"
    huge = str(-(2**64))
    nan = "NaN" if db.is_sqlite else "null"  # PostgreSQL's JSON type refuses NaN itself; the huge integer it keeps
    request = '{"prompt": "a lighthouse", "model": "sdxl-base", "seed": %s, "guidance": %s}' % (huge, nan)
    parameters = '{"seed": %s, "guidance": %s, "steps": 2}' % (huge, nan)
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO accounts (id, kind, tier, display_name, balance, created_at) "
                             "VALUES (:i, 'visitor', 'guest', 'Guest', 47, :t)"), {"i": account_id, "t": time.time()})
        conn.execute(sa.text(
            "INSERT INTO generations (id, account_id, idempotency_key, params_hash, task, model, request, parameters, seeds, "
            "status, price, charged, safety, preview, instance_id, created_at, finished_at) VALUES (:id, :a, 'k', 'h', "
            "'text-to-image', 'sdxl-base', :request, :parameters, :seeds, 'done', 3, 3, 'unchecked', false, 'gone', :t, :t)"),
            {"id": request_id, "a": account_id, "request": request, "parameters": parameters, "seeds": "[%s]" % huge, "t": time.time()})
        conn.execute(sa.text("INSERT INTO generation_files (generation_id, idx, path, media, seed, safety) "
                             "VALUES (:g, 0, :p, 'image', 0, 'unchecked')"), {"g": request_id, "p": png.relative_to(outputs).as_posix()})
    db.dispose()
    return account_id, request_id


def test_a_poisoned_history_is_repaired_by_the_migration_and_loads(db_url, tmp_path, tiny_root):
    data = tmp_path / "data"
    account_id, request_id = _poison(db_url, data / "outputs")
    url, demo, services = launch_app(data, tiny_root, database_url=db_url)  # start-up applies the migrations
    try:
        token = services.identity.sign(account_id)
        (record,) = Client(url, verbose=False).predict(token, api_name="/history")
        assert record["id"] == request_id
        assert record["request"]["seed"] is None and record["request"]["prompt"] == "a lighthouse"
        assert record["parameters"]["seed"] is None and record["parameters"]["steps"] == 2 and record["seeds"] == [None]
        if services.db.is_sqlite:
            assert record["request"]["guidance"] is None
    finally:
        stop_app(demo, services)


def test_unknown_choices_and_ids_get_the_apps_own_message(client):
    """Values of the right type that name nothing (an unknown task, model, preset, id, reason): a clear refusal."""
    token = client.predict(api_name="/session_start")["token"]
    cases = [
        ("/quote", dict(model="sdxl-base", task="bogus"), "task 'bogus' is not one of text-to-image"),
        ("/quote", dict(model="sdxl-base", aspect_ratio="7:3"), "has no 7:3 sizes; choose one of"),
        ("/quote", dict(model="sdxl-base", resolution="9K"), "offers 1:1 at 1K, not 9K"),
        ("/text_to_image", dict(prompt="x", model="sdxl-base", prompt_style="weird"), "not in the list of choices"),
        ("/figure_quick", dict(archetype="nope"), "archetype: 'nope' is not one of"),
        ("/figure_quick", dict(face="nope"), "face: 'nope' is not one of"),
        ("/figure_custom", dict(appearance="an adult", style="nope"), "not in the list of choices"),
        ("/figure_remix", dict(figure_id="nope", prompt="x"), "No figure 'nope' among yours"),
        ("/figure_remix", dict(figure_id="nope", prompt="x", model="nope"), "unknown model 'nope'"),
        ("/edit_image", dict(request_id="nope", instruction="x"), "No generation 'nope' in your history"),
        ("/group_image", dict(figure_ids=["a", "b"], prompt="x"), "No figure 'a' among yours"),
        ("/figure_to_video", dict(figure_id="nope"), "No figure 'nope' among yours"),
        ("/compare", dict(prompt="x", models=["a", "b"]), "unknown model 'a'"),
        ("/character_create", dict(figure_id="nope", name="x", intro="x", tags=["x"], visibility="private", greeting="x"),
         "No figure 'nope' among yours"),
        ("/character_create", dict(name="x", intro="x", tags=["x"], visibility="private", greeting="x",
                                   opening_messages=[f"hi {i}" for i in range(21)]), "Opening messages: at most 20; there are 21"),
        ("/character_create", dict(name="x", intro="x", tags=["x"], greeting="x"), "Visibility is required"),
        ("/character_export", dict(character_id="nope"), "No character 'nope' that you can open"),
        ("/character_gallery", dict(character_id="nope"), "No character 'nope' that you can open"),
        ("/album_unlock", dict(character_id="nope"), "No character 'nope' that you can open"),
        ("/review_character", dict(character_id="nope", verify=True), "Only QA sessions moderate characters"),
        ("/report_image", dict(request_id="nope", reason="zzz"), "Pick a reason"),
        ("/review_reports", dict(status="zzz"), "Only QA/admin sessions"),
        ("/confirm_age", dict(), "Age confirmation is for members"),
    ]
    for name, kwargs, message in cases:
        with pytest.raises(AppError) as refused:
            client.predict(token=token, **kwargs, api_name=name)
        assert message in str(refused.value) and "Generation failed" not in str(refused.value), (name, str(refused.value))
    assert client.predict(token, api_name="/balance")["balance"] == 50
