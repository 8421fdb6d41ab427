"""The public API is a deliberate surface: README lists exactly the public endpoints, each is callable through
gradio_client with only its required arguments (on the tiny models), every other argument has a documented default,
and a call without a token gets the app's own message."""
from __future__ import annotations

import json
import re
import time

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from tests.chat_helpers import SKIMAGE
from tests.conftest import ADMIN_KEY, ROOT

PICTURE = str(SKIMAGE / "astronaut.png")  # an upload for /version_upload and /ref_add


def readme_endpoints() -> dict[str, list[str]]:
    """endpoint -> required arguments, from README's API table."""
    rows = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| `(/\w+)` \|([^|]*)\|", line)
        if match:
            rows[match.group(1)] = re.findall(r"`(\w+)`", match.group(2))
    return rows


@pytest.fixture(scope="module")
def api(client):
    return client.view_api(return_format="dict", print_info=False)["named_endpoints"]


def test_readme_lists_exactly_the_public_endpoints(api):
    documented = readme_endpoints()
    assert sorted(documented) == sorted(api), "README's API table and the app's public endpoints differ"
    for name, required in documented.items():
        params = {p["parameter_name"]: p for p in api[name]["parameters"]}
        assert set(required) <= set(params), f"{name}: README names arguments it does not take: {set(required) - set(params)}"
        without_default = {n for n, p in params.items() if not p["parameter_has_default"]}
        assert without_default <= set(required), f"{name}: {without_default - set(required)} have no default but README says optional"


def test_every_public_endpoint_documents_every_parameter(tmp_path, tiny_root):
    """Docstrings with an Args: section naming every API parameter (they feed the API page and MCP)."""
    import os

    from gradio import utils

    import app as app_module
    from services.config import AppSettings

    os.environ["PLAYGROUND_TINY_DIR"] = str(tiny_root)
    demo, _, services = app_module.create(AppSettings.from_env(data_dir=tmp_path, preview="force", device="cpu"))
    try:
        public = {f.api_name: f for f in demo.fns.values() if f.api_visibility == "public" and f.fn is not None}
        assert set(public) == {name.lstrip("/") for name in readme_endpoints()}
        for name, block_fn in public.items():
            description, parameters, _ = utils.get_function_description(block_fn.fn)
            assert description.strip(), f"/{name} has no docstring"
            info = demo.get_api_info()["named_endpoints"][f"/{name}"]
            missing = [p["parameter_name"] for p in info["parameters"] if p["parameter_name"] not in parameters]
            assert not missing, f"/{name}: the docstring's Args: does not describe {missing}"
    finally:
        services.close()


def test_every_endpoint_runs_with_only_its_required_arguments(app_server, api, monkeypatch):
    """In README's order, each endpoint is called with exactly its required arguments; earlier results feed later ones.
    The results are read raw (files not downloaded), and none contains the server's data directory."""
    from gradio_client import Client

    url, services = app_server
    client = Client(url, verbose=False, download_files=False)
    private = [str(services.settings.data_dir.resolve()), str(services.settings.data_dir)]
    documented = readme_endpoints()
    state: dict = {}
    calls = {
        "/models": lambda: {},
        "/session_start": lambda: {},
        "/balance": lambda: {"token": state["token"]},
        "/quote": lambda: {"token": state["token"], "model": "sdxl-base"},
        "/ledger": lambda: {"token": state["token"]},
        "/cancel": lambda: {"token": state["token"]},
        "/confirm_age": lambda: {"token": state["qa"]},
        "/text_to_image": lambda: {"prompt": "a lighthouse at dusk", "model": "sdxl-base", "token": state["token"]},
        "/figure_quick": lambda: {"token": state["token"]},
        "/figure_custom": lambda: {"appearance": "tall woman, copper braid, grey eyes", "token": state["token"]},
        "/figure_save": lambda: {"token": state["token"], "name": "Mara", "request_id": state["takes"]},
        "/figures": lambda: {"token": state["token"]},
        "/figure": lambda: {"token": state["token"], "figure_id": state["figure"]["id"]},
        "/figure_set_canonical": lambda: {"token": state["token"], "figure_id": state["figure"]["id"],
                                          "take_id": state["figure"]["takes"][-1]["id"]},
        "/figure_duplicate": lambda: {"token": state["token"], "figure_id": state["figure"]["id"]},
        "/figure_delete": lambda: {"token": state["token"], "figure_id": state["copy"]["id"], "confirm": True},
        "/figure_remix": lambda: {"figure_id": state["figure"]["id"], "prompt": "reading in a library", "token": state["token"]},
        "/advanced_image": lambda: {"figure_id": state["figure"]["id"], "description": "She reads by a window.", "token": state["token"]},
        "/reference_sheet": lambda: {"figure_id": state["figure"]["id"], "token": state["token"]},
        "/reference_sheet_pick": lambda: {"token": state["token"], "figure_id": state["figure"]["id"], "request_id": state["sheet"]},
        "/figure_loras": lambda: {"token": state["token"], "figure_id": state["figure"]["id"]},
        "/figure_identity": lambda: {"token": state["token"], "figure_id": state["figure"]["id"]},
        "/identity_chain": lambda: {"token": state["token"], "request_id": state["remix"]},
        "/edit_image": lambda: {"request_id": state["image"], "instruction": "paint the door red", "token": state["token"]},
        "/group_image": lambda: {"figure_ids": [state["figure"]["id"], state["second"]["id"]], "prompt": "two friends at a campfire",
                                 "token": state["token"]},
        "/figure_to_video": lambda: {"figure_id": state["figure"]["id"], "token": state["token"]},
        "/image_to_video": lambda: {"request_id": state["qa_image"], "token": state["qa"]},
        "/text_to_video": lambda: {"prompt": "a red kite over the sea", "token": state["qa"]},
        "/figure_to_video_job": lambda: {"figure_id": state["figure"]["id"], "token": state["token"]},
        "/image_to_video_job": lambda: {"request_id": state["qa_image"], "token": state["qa"]},
        "/text_to_video_job": lambda: {"prompt": "a red kite over the sea", "token": state["qa"]},
        "/job": lambda: {"token": state["token"], "job_id": state["job"]},
        "/compare": lambda: {"prompt": "a lighthouse", "models": ["sdxl-base", "flux.1-schnell"], "token": state["token"]},
        "/prompt_sets": lambda: {},
        "/grid_quote": lambda: {"token": state["token"], "models": ["sdxl-base", "flux.1-schnell"]},
        "/grid_run": lambda: {"token": state["token"], "models": ["sdxl-base", "flux.1-schnell"]},
        "/grid": lambda: {"token": state["token"], "grid_id": state["grid"]},
        "/grids": lambda: {"token": state["token"]},
        "/grid_resume": lambda: {"token": state["token"], "grid_id": state["grid"]},
        "/grid_export": lambda: {"token": state["token"], "grid_id": state["grid"]},
        "/arena_round": lambda: {"token": state["token"]},
        "/arena_vote": lambda: {"token": state["token"], "battle_id": state["battle"], "outcome": "left"},
        "/arena_export": lambda: {"token": state["token"]},
        "/identity_export": lambda: {"token": state["token"], "figure_id": state["figure"]["id"]},
        "/dataset_push": lambda: {"token": state["token"], "hub_repo": "tester/grid", "hub_token": "hf_surface_token"},
        "/arena_leaderboard": lambda: {},
        "/character_create": lambda: {"token": state["token"], "name": "Iris Vale", "intro": "A harbour cartographer.",
                                      "tags": ["mentor"], "visibility": "unlisted", "greeting": "You found my map?"},
        "/character_update": lambda: {"token": state["token"], "character_id": state["character"]["id"]},
        "/character": lambda: {"character_id": state["character"]["id"]},
        "/characters": lambda: {"token": state["token"]},
        "/catalogue": lambda: {},
        "/character_gallery": lambda: {"character_id": state["character"]["id"]},
        "/character_gallery_add": lambda: {"token": state["token"], "character_id": state["character"]["id"], "request_id": state["image"]},
        "/character_gallery_remove": lambda: {"token": state["token"], "character_id": state["character"]["id"],
                                              "media_id": state["media"]},
        "/character_set_main": lambda: {"token": state["token"], "character_id": state["character"]["id"], "source": "generate"},
        "/character_edit_main": lambda: {"token": state["token"], "character_id": state["character"]["id"], "instruction": "evening light"},
        "/character_export": lambda: {"character_id": state["character"]["id"]},
        "/character_import": lambda: {"card": handle_file(state["card"]), "token": state["token"]},
        "/album_offer": lambda: {"token": state["token"], "character_id": state["on_figure"]["id"], "price": 10,
                                 "media_ids": [state["on_figure_media"]]},
        "/album_unlock": lambda: {"token": state["other"], "character_id": state["on_figure"]["id"], "price": 10},
        "/character_advanced": lambda: {"token": state["token"], "character_id": state["on_figure"]["id"], "enabled": True},
        "/album": lambda: {"character_id": state["on_figure"]["id"]},
        "/review_characters": lambda: {"token": state["qa"]},
        "/review_character_view": lambda: {"token": state["qa"], "character_id": state["public"]["id"]},
        "/review_character": lambda: {"token": state["qa"], "character_id": state["public"]["id"], "verify": True,
                                      "revision": state["public"].get("revision", 0)},
        "/character_options": lambda: {},
        "/character_help": lambda: {},
        "/character_delete": lambda: {"token": state["token"], "character_id": state["imported"]["id"], "confirm": True},
        "/chat_open": lambda: {"token": state["token"], "character_id": state["character"]["id"]},
        "/chat_get": lambda: {"token": state["token"], "conversation_id": state["chat"]},
        "/chat_list": lambda: {"token": state["token"]},
        "/chat_quote": lambda: {"token": state["token"], "conversation_id": state["chat"]},
        "/chat_send": lambda: {"token": state["token"], "conversation_id": state["chat"], "message": "Hello, Iris"},
        "/chat_picture": lambda: {"token": state["token"], "conversation_id": state["chat"]},
        "/chat_choose": lambda: {"token": state["token"], "conversation_id": state["chat"]},
        "/chat_rename": lambda: {"token": state["token"], "conversation_id": state["chat"], "title": "Harbour night"},
        "/chat_clear": lambda: {"token": state["token"], "conversation_id": state["chat"]},
        "/chat_delete": lambda: {"token": state["token"], "conversation_id": state["chat"], "confirm": True},
        "/chat_adult": lambda: {"token": state["token"], "character_id": state["character"]["id"], "enabled": False},
        "/project_create": lambda: {"token": state["token"], "name": "Lighthouse"},
        "/projects": lambda: {"token": state["token"]},
        "/project": lambda: {"token": state["token"], "project_id": state["project"]["id"]},
        "/project_rename": lambda: {"token": state["token"], "project_id": state["project"]["id"], "name": "Harbour light"},
        "/project_archive": lambda: {"token": state["token"], "project_id": state["spare_project"]},
        "/project_join": lambda: {"token": state["member"], "invite": state["project"]["invite"]},
        "/project_member_add": lambda: {"token": state["token"], "project_id": state["project"]["id"], "member_id": state["third"]},
        "/project_leave": lambda: {"token": state["member"], "project_id": state["project"]["id"]},
        "/project_member_remove": lambda: {"token": state["token"], "project_id": state["project"]["id"], "member_id": state["third"]},
        "/card_create": lambda: {"token": state["token"], "project_id": state["project"]["id"]},
        "/cards": lambda: {"token": state["token"], "project_id": state["project"]["id"]},
        "/card": lambda: {"token": state["token"], "card_id": state["card"]["id"]},
        "/card_rename": lambda: {"token": state["token"], "card_id": state["card"]["id"], "title": "Keeper"},
        "/card_draft": lambda: {"token": state["token"], "card_id": state["card"]["id"], "draft": "a lighthouse keeper at dusk",
                                "revision": state["card"]["revision"]},
        "/card_settings": lambda: {"token": state["token"], "card_id": state["card"]["id"]},
        "/version_quote": lambda: {"token": state["token"], "card_id": state["card"]["id"]},
        "/versions_new": lambda: {"token": state["token"], "card_id": state["card"]["id"]},
        "/version_upload": lambda: {"token": state["token"], "card_id": state["card"]["id"], "upload": handle_file(PICTURE)},
        "/version": lambda: {"token": state["token"], "version_id": state["version"]},
        "/version_review": lambda: {"token": state["token"], "version_id": state["version"], "review": "approved"},
        "/version_favourite": lambda: {"token": state["token"], "version_id": state["version"]},
        "/version_restore": lambda: {"token": state["token"], "version_id": state["version"]},
        "/version_fork": lambda: {"token": state["token"], "version_id": state["version"]},
        "/card_direction": lambda: {"token": state["token"], "card_id": state["card"]["id"], "direction_id": state["card"]["direction"]["id"]},
        "/direction_rename": lambda: {"token": state["token"], "direction_id": state["fork"], "name": "Blue hour"},
        "/ref_add": lambda: {"token": state["token"], "project_id": state["project"]["id"], "kind": "location", "name": "Harbour",
                             "upload": handle_file(PICTURE)},
        "/ref_shot": lambda: {"token": state["token"], "version_id": state["version"]},
        "/ref_figure": lambda: {"token": state["token"], "project_id": state["project"]["id"], "figure_id": state["figure"]["id"]},
        "/refs": lambda: {"token": state["token"], "project_id": state["project"]["id"]},
        "/card_ref": lambda: {"token": state["token"], "card_id": state["card"]["id"], "ref_id": state["ref"]},
        "/scene_create": lambda: {"token": state["token"], "project_id": state["project"]["id"], "name": "Dawn"},
        "/scenes": lambda: {"token": state["token"], "project_id": state["project"]["id"]},
        "/scene_shot": lambda: {"token": state["token"], "scene_id": state["scene"], "ref_id": state["ref"]},
        "/card_scene": lambda: {"token": state["token"], "card_id": state["card"]["id"]},
        "/feed": lambda: {"token": state["token"], "project_id": state["project"]["id"]},
        "/showcase": lambda: {"token": state["token"], "project_id": state["project"]["id"]},
        "/refine": lambda: {"token": state["token"], "card_id": state["card"]["id"]},
        "/refine_suggest": lambda: {"token": state["token"], "card_id": state["card"]["id"], "picked": ["soft window light"]},
        "/refine_change": lambda: {"token": state["token"], "card_id": state["card"]["id"], "instruction": "closer"},
        "/refine_clear": lambda: {"token": state["token"], "card_id": state["card"]["id"]},
        "/history": lambda: {"token": state["token"]},
        "/report_image": lambda: {"token": state["token"], "request_id": state["image"]},
        "/review_reports": lambda: {"token": state["qa"]},
        "/review_report": lambda: {"token": state["qa"], "report_id": state["report"]["id"], "approve": True},
        "/qa_run": lambda: {"token": state["qa"], "presets": "loras"},
        "/qa_runs": lambda: {"token": state["qa"]},
        "/qa_report": lambda: {"token": state["qa"], "run_id": state["qa_run"]},
    }
    assert list(calls) == list(documented), "this test calls the endpoints in README's order"
    # /dataset_push talks to a stand-in Hub on 127.0.0.1 (PLAYGROUND_HUB_ENDPOINT), never the internet
    import huggingface_hub.constants as hub_constants

    from tests.fake_hub import FakeHub

    hub = FakeHub(token="hf_surface_token", lfs=False).__enter__()
    monkeypatch.setenv("PLAYGROUND_HUB_ENDPOINT", hub.endpoint)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)

    def after(name: str, result) -> None:  # what later calls need
        if name == "/session_start":
            state["token"] = result["token"]
            # one visitor walks every paid endpoint (a video included): more than the starting grant
            visitor = services.identity.resolve(result["token"], None)
            with services.db.begin() as conn:
                services.ledger.adjust(conn, visitor.id, 100, "test", "enough for every paid endpoint")
            state["qa"] = client.predict(admin_key=ADMIN_KEY, api_name="/session_start")["token"]
            state["qa_image"] = client.predict(prompt="a red kite", model="sdxl-base", token=state["qa"], api_name="/text_to_image")[1]["request_id"]
        elif name == "/text_to_image":
            state["image"] = result[1]["request_id"]
        elif name.endswith("_job"):  # each job ends before the next starts (one run at a time per visitor)
            owner = state["token"] if name == "/figure_to_video_job" else state["qa"]
            state.setdefault("job", result["job_id"])
            done = services.background.wait(services.identity.resolve(owner).id, result["job_id"], 300)
            assert done["state"] == "done", done
        elif name == "/grid_run":
            state["grid"] = result["grid_id"]
            done = services.background.wait(services.identity.resolve(state["token"]).id, result["grid_id"], 300)
            assert done["state"] == "done", done
        elif name == "/arena_round":
            state["battle"] = result["battle_id"]
        elif name == "/qa_run":
            state["qa_run"] = result["run_id"]
        elif name == "/reference_sheet":
            state["sheet"] = result[1]["request_id"]
        elif name == "/figure_remix":
            state["remix"] = result[1]["request_id"]
        elif name == "/figure_quick":
            state["takes"] = result[1]["request_id"]
        elif name == "/figure_custom":
            state["custom_takes"] = result[1]["request_id"]
        elif name == "/figure_save":
            state["figure"] = result
            state["second"] = client.predict(token=state["token"], name="Ash", request_id=state["custom_takes"], api_name="/figure_save")
        elif name == "/figure_duplicate":
            state["copy"] = result
        elif name == "/compare":  # the characters' generations need more than a visitor's starting grant
            account = services.identity.resolve(state["token"])
            with services.db.begin() as conn:
                services.ledger.grant(conn, account.id, 100, "test-top-up", "API surface test")
        elif name == "/character_create":
            state["character"] = result
            state["other"] = client.predict(api_name="/session_start")["token"]
            profile = {"token": state["token"], "intro": "Keeper of the lamp.", "tags": ["sea"], "greeting": "Door's open."}
            state["on_figure"] = client.predict(name="Marrow", visibility="unlisted", figure_id=state["figure"]["id"], **profile,
                                                api_name="/character_create")
            client.predict(token=state["token"], character_id=state["on_figure"]["id"], request_id=state["image"],
                           api_name="/character_gallery_add")
            state["on_figure_media"] = client.predict(character_id=state["on_figure"]["id"], token=state["token"],
                                                      api_name="/character_gallery")["items"][0]["id"]
            state["public"] = client.predict(name="Paz", visibility="public", avatar_source="figure",
                                             figure_id=state["figure"]["id"], **profile, api_name="/character_create")
        elif name == "/character_gallery_add":
            state["media"] = client.predict(character_id=state["character"]["id"], token=state["token"],
                                            api_name="/character_gallery")["items"][0]["id"]
        elif name == "/character_export":  # downloaded by a client that fetches files, then uploaded back
            state["card"] = Client(url, verbose=False).predict(character_id=state["character"]["id"], api_name="/character_export")
        elif name == "/character_import":
            state["imported"] = result
        elif name == "/chat_open":
            state["chat"] = result["id"]
        elif name == "/report_image":
            state["report"] = result
        elif name == "/project_create":  # a member to join and leave, an account to add and remove, a project to archive
            state["project"] = result
            state["member"] = client.predict(api_name="/session_start")["token"]
            state["third"] = client.predict(api_name="/session_start")["account"]
            state["spare_project"] = client.predict(token=state["token"], name="Spare", api_name="/project_create")["id"]
            account = services.identity.resolve(state["token"])
            with services.db.begin() as conn:  # the versions below are paid
                services.ledger.grant(conn, account.id, 50, "test-projects", "API surface test")
        elif name in ("/card_create", "/card_draft"):
            state["card"] = result
        elif name == "/versions_new":  # it answers at once; the version finishes in the background
            state["version"] = result["version_ids"][0]
            deadline = time.monotonic() + 300
            while services.projects.version(services.identity.resolve(state["token"]), state["version"])["status"] == "generating":
                assert time.monotonic() < deadline, "the version did not finish"
                time.sleep(0.2)
        elif name == "/version_fork":
            state["fork"] = result["direction"]["id"]
        elif name == "/ref_add":
            state["ref"] = result["id"]
        elif name == "/scene_create":
            state["scene"] = result["id"]

    for name, arguments in calls.items():
        kwargs = arguments()
        assert sorted(kwargs) == sorted(documented[name]), f"{name}: README's required arguments are {documented[name]}"
        try:
            result = client.predict(**kwargs, api_name=name)
        except AppError as exc:
            pytest.fail(f"{name} with only {sorted(kwargs)} failed: {exc}")
        raw = json.dumps(result, default=str)
        assert not any(p in raw for p in private), f"{name} returned a server path: {raw[:400]}"
        after(name, result)
    assert client.predict(state["token"], api_name="/balance")["balance"] >= 0
    assert "tester/grid" in hub.repos and hub.unknown == []
    hub.__exit__(None, None, None)


def test_a_call_without_a_token_gets_the_apps_own_message(client, api):
    """No client-side TypeError: the app answers, naming /session_start."""
    required = readme_endpoints()
    filler = {"prompt": "a lighthouse", "model": "sdxl-base", "appearance": "a tall adult", "name": "x", "request_id": "x",
              "figure_id": "x", "take_id": "x", "confirm": True, "instruction": "x", "figure_ids": ["x", "y"], "description": "x",
              "models": ["sdxl-base", "flux.1-schnell"], "fields": {"name": "x"}, "character_id": "x", "report_id": "x",
              "approve": True, "intro": "x", "tags": ["x"], "visibility": "private", "greeting": "x", "media_id": "x",
              "source": "generate", "price": 10, "verify": True, "revision": 0, "media_ids": ["x"], "enabled": True, "conversation_id": "x", "message": "x", "title": "x", "presets": "loras", "run_id": "x", "job_id": "x", "grid_id": "x", "battle_id": "x", "outcome": "left", "hub_repo": "a/b", "hub_token": "x", "project_id": "x", "card_id": "x", "version_id": "x", "ref_id": "x",
              "scene_id": "x", "direction_id": "x", "member_id": "x", "invite": "x", "draft": "x", "review": "approved", "kind": "object",
              "picked": ["x"], "upload": handle_file(PICTURE), "card": handle_file(str(ROOT / "tests" / "data" / "card-v1.json"))}
    for name, arguments in required.items():
        if "token" not in arguments:
            continue
        kwargs = {a: filler[a] for a in arguments if a != "token"}
        with pytest.raises(AppError, match="/session_start"):
            client.predict(**kwargs, api_name=name)
