"""Errors where the visitor acts, and the page kept: every UI event of the app is called as the browser calls it
(gradio's queue protocol, the inputs' own starting values, a real visitor session), and none ends in gradio's error
state (which would put a red "Error" pill on every output of the event and blank it). A visitor's mistake is a
toast; nothing prints a traceback for it. Public endpoints still answer API callers with an error."""
from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest

from .conftest import launch_app, stop_app


@pytest.fixture
def walked_app(tmp_path, tiny_root):
    url, demo, services = launch_app(tmp_path / "data", tiny_root)
    try:
        yield url, services
    finally:
        stop_app(demo, services)


def call_event(http: httpx.Client, fn_index: int, data: list, session: str, event_data: dict | None = None) -> dict:
    """One event through /queue/join and its SSE stream: {"success", "output", "logs"}."""
    joined = http.post("/gradio_api/queue/join", json={"data": data, "event_data": event_data, "fn_index": fn_index,
                                                       "trigger_id": None, "session_hash": session})
    assert joined.status_code == 200, joined.text
    event_id, logs = joined.json()["event_id"], []
    with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}, timeout=120) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") not in (event_id, None):
                continue
            if message.get("msg") == "log":
                logs.append((message.get("level"), message.get("log")))
            if message.get("msg") == "process_completed":
                return {"success": message.get("success"), "output": message.get("output"), "logs": logs}
    raise AssertionError(f"event {fn_index} never completed")


def starting_value(component: dict, token: str):
    kind = component["type"]
    if kind == "browserstate":
        return token
    if kind == "state":
        return None
    return component.get("props", {}).get("value")


def test_no_ui_event_puts_its_outputs_into_the_error_state(walked_app, capfd, caplog):
    url, services = walked_app
    caplog.set_level(logging.INFO)
    with httpx.Client(base_url=url, timeout=120) as http:
        config = http.get("/config").json()
        components = {c["id"]: c for c in config["components"]}
        token = http.post("/gradio_api/call/session_start", json={"data": ["", ""]}).json()["event_id"]
        body = http.get(f"/gradio_api/call/session_start/{token}").text
        token = json.loads(next(line for line in body.splitlines() if line.startswith("data:"))[5:])[0]["token"]
        session = uuid.uuid4().hex
        failed, warned, ran = [], [], 0
        for dep in config["dependencies"]:
            if not dep["backend_fn"] or dep["api_visibility"] == "public" or dep["types"]["cancel"]:
                continue
            data = [starting_value(components[i], token) for i in dep["inputs"]]
            # a select event always carries what was clicked (here: the first item, as a first click would)
            clicked = {"index": 0, "value": None, "selected": True} if dep["collects_event_data"] else None
            result = call_event(http, dep["id"], data, session, clicked)
            ran += 1
            if not result["success"]:
                failed.append((dep["id"], dep["api_name"], result["output"]))
            warned += [(dep["api_name"], text) for level, text in result["logs"] if level == "warning"]
    assert ran > 100
    assert not failed, f"{len(failed)} UI events ended in gradio's error state: {failed[:5]}"
    # the walk met many visitor mistakes (empty prompts, nothing picked, unticked confirmations, members-only forms)
    assert len(warned) >= 15, warned
    assert any("prompt" in text.lower() for _, text in warned)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, (out + err)[-3000:]
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


def test_public_endpoints_still_answer_api_callers_with_the_message(walked_app, capfd):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, _ = walked_app
    client = Client(url, verbose=False)
    token = client.predict(api_name="/session_start")["token"]
    with pytest.raises(AppError, match="Write a prompt first"):
        client.predict(prompt=" ", model="sdxl-base", token=token, api_name="/text_to_image")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
