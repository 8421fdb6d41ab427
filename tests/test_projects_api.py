"""The projects endpoints as a script calls them through gradio_client against the running app (offline preview): a
non-member reads nothing of a project through any endpoint that takes one of its ids (README's table is the list), a
removed member loses access at once, two members editing one draft never overwrite each other silently, and an invite
link joins."""
from __future__ import annotations

import re

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from tests.chat_helpers import SKIMAGE
from tests.test_api_surface import readme_endpoints

IDS = ("project_id", "card_id", "version_id", "ref_id", "scene_id", "direction_id")
NOT_YOURS = re.compile(r"No (project|card|version|ref|scene|direction) '[^']*' (among yours|in your projects)")
PICTURE = str(SKIMAGE / "astronaut.png")


def balance(client, token: str) -> int:
    return client.predict(token=token, api_name="/balance")["balance"]


@pytest.fixture(scope="module")
def shared(client):
    """A project with one of everything: a card with a finished version and a fork, a ref, a scene."""
    owner = client.predict(api_name="/session_start")["token"]
    project = client.predict(token=owner, name="Harbour", api_name="/project_create")
    card = client.predict(token=owner, project_id=project["id"], title="Keeper", prompt="a lighthouse keeper at dusk",
                          api_name="/card_create")
    made = client.predict(token=owner, card_id=card["id"], wait=True, api_name="/versions_new")
    version = made["versions"][0]
    assert version["status"] == "done", version
    ref = client.predict(token=owner, project_id=project["id"], kind="location", name="Quay", upload=handle_file(PICTURE),
                         api_name="/ref_add")
    scene = client.predict(token=owner, project_id=project["id"], name="Dawn", api_name="/scene_create")
    client.predict(token=owner, scene_id=scene["id"], ref_id=ref["id"], api_name="/scene_shot")
    forked = client.predict(token=owner, version_id=version["id"], name="Blue hour", api_name="/version_fork")
    ids = {"project_id": project["id"], "card_id": card["id"], "version_id": version["id"], "ref_id": ref["id"],
           "scene_id": scene["id"], "direction_id": forked["direction"]["id"]}
    return owner, project, ids


def by_id_endpoints() -> dict[str, list[str]]:
    """README's endpoints that take the id of something in a project."""
    return {name: required for name, required in readme_endpoints().items() if set(required) & set(IDS)}


def attempt_everything(client, token: str, ids: dict[str, str], figure_id: str = "x") -> dict[str, str]:
    """Call every by-id projects endpoint as `token` with the project's real ids: endpoint -> the refusal's message
    (or "ANSWERED" when it was not refused)."""
    values = dict(ids, name="Mine now", title="Mine now", draft="mine now", revision=0, review="approved", kind="object",
                  upload=handle_file(PICTURE), picked=["soft window light"], instruction="closer", member_id="x",
                  figure_id=figure_id)
    said = {}
    for name, required in by_id_endpoints().items():
        kwargs = {a: values[a] for a in required if a != "token"}
        try:
            client.predict(token=token, **kwargs, api_name=name)
            said[name] = "ANSWERED"
        except AppError as exc:
            said[name] = str(exc)
    return said


def test_a_non_member_reads_nothing_through_any_projects_endpoint(client, shared):
    owner, project, ids = shared
    endpoints = by_id_endpoints()
    for expected in ("/cards", "/card", "/refs", "/version", "/scenes", "/feed", "/showcase", "/versions_new", "/version_fork",
                     "/card_draft", "/refine", "/project", "/ref_figure"):
        assert expected in endpoints, f"README lists no {expected} taking a project's id"
    stranger = client.predict(api_name="/session_start")["token"]
    takes = client.predict(model="sdxl-base", takes=1, token=stranger, api_name="/figure_quick")  # their own figure, to add as a ref
    figure = client.predict(token=stranger, name="Mine", request_id=takes[1]["request_id"], api_name="/figure_save")
    before = balance(client, stranger)
    owner_card = client.predict(token=owner, card_id=ids["card_id"], api_name="/card")

    said = attempt_everything(client, stranger, ids, figure["id"])
    leaks = {name: message for name, message in said.items() if not NOT_YOURS.search(message)}
    assert not leaks, f"endpoints not refused with 'No project/card/...': {leaks}"
    assert balance(client, stranger) == before  # nothing charged
    assert client.predict(token=stranger, api_name="/projects") == []
    after = client.predict(token=owner, card_id=ids["card_id"], api_name="/card")
    assert {k: after[k] for k in ("draft", "revision", "title", "settings", "scene_id", "directions")} == \
        {k: owner_card[k] for k in ("draft", "revision", "title", "settings", "scene_id", "directions")}
    assert [v["id"] for v in after["versions"]] == [v["id"] for v in owner_card["versions"]]
    # an id that does not exist gets the very same answer as one the caller may not see
    with pytest.raises(AppError, match=re.escape("No card 'no-such-card' in your projects.")):
        client.predict(token=stranger, card_id="no-such-card", api_name="/card")


def test_a_removed_member_loses_access_at_once(client, shared):
    owner, project, ids = shared
    member = client.predict(api_name="/session_start")
    added = client.predict(token=owner, project_id=project["id"], member_id=member["account"], api_name="/project_member_add")
    assert {(m["account_id"], m["role"]) for m in added["members"]} >= {(member["account"], "member")}
    assert client.predict(token=member["token"], card_id=ids["card_id"], api_name="/card")["title"] == "Keeper"
    assert ids["ref_id"] in [r["id"] for r in client.predict(token=member["token"], project_id=project["id"], api_name="/refs")]
    assert "invite" not in client.predict(token=member["token"], project_id=project["id"], api_name="/project")  # the owner's

    client.predict(token=owner, project_id=project["id"], member_id=member["account"], api_name="/project_member_remove")
    said = attempt_everything(client, member["token"], ids)
    leaks = {name: message for name, message in said.items() if not NOT_YOURS.search(message)}
    assert not leaks, f"a removed member still reached: {leaks}"
    assert client.predict(token=member["token"], api_name="/projects") == []


def test_two_members_editing_one_draft_the_stale_save_is_refused_with_a_message(client, shared):
    owner, project, ids = shared
    # an invite link (the whole link) joins
    invite = client.predict(token=owner, project_id=project["id"], api_name="/project")["invite"]
    ana = client.predict(api_name="/session_start")["token"]
    joined = client.predict(token=ana, invite=f"http://127.0.0.1:7860/?invite={invite}", api_name="/project_join")
    assert joined["id"] == project["id"] and joined["role"] == "member"

    card = ids["card_id"]
    opened_owner = client.predict(token=owner, card_id=card, api_name="/card")
    opened_ana = client.predict(token=ana, card_id=card, api_name="/card")
    assert opened_owner["revision"] == opened_ana["revision"] and opened_owner["draft"] == opened_ana["draft"]

    first = client.predict(token=owner, card_id=card, draft="the keeper at first light", revision=opened_owner["revision"],
                           api_name="/card_draft")
    assert first["draft"] == "the keeper at first light" and first["revision"] == opened_owner["revision"] + 1
    with pytest.raises(AppError, match="Someone saved this card's prompt since you opened it") as refused:
        client.predict(token=ana, card_id=card, draft="the keeper in a storm", revision=opened_ana["revision"], api_name="/card_draft")
    assert "your text was not saved" in str(refused.value)
    kept = client.predict(token=ana, card_id=card, api_name="/card")
    assert kept["draft"] == "the keeper at first light"  # the first save is kept, the second was not silently lost either
    again = client.predict(token=ana, card_id=card, draft="the keeper in a storm", revision=kept["revision"], api_name="/card_draft")
    assert again["draft"] == "the keeper in a storm"
    assert client.predict(token=owner, card_id=card, api_name="/card")["draft"] == "the keeper in a storm"

    client.predict(token=ana, project_id=project["id"], api_name="/project_leave")
    with pytest.raises(AppError, match=NOT_YOURS.pattern):
        client.predict(token=ana, card_id=card, api_name="/card")
