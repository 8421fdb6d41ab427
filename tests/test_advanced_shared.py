"""Advanced on other visitors' characters (issue 30, item 6): a creator enables Advanced for a figure-backed character
(refused until its figure has a picked reference sheet); then another visitor makes Advanced and Group images of it,
priced as Advanced, charged to them, while nothing they get back (results, history, PNG text chunks, messages) names
the figure or its id. Refused, with nothing charged, before enabling, after revoking, and on a private character.
Checked through the services, and once through gradio_client on the launched app."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from PIL import Image

from pipelines.types import Task
from services.creation.characters import CharacterError, Profile
from services.errors import UserError
from tests.test_characters import guest, upload, with_profile

MODEL = "flux.2-dev"  # Advanced's default model, and a Group model


@pytest.fixture
def db_url(tmp_path):  # the schema's migration runs on both databases in test_db.py
    return f"sqlite:///{tmp_path / 'playground.db'}"


def png_texts(path) -> str:
    """Every text chunk of an output PNG, as PIL reads them."""
    with Image.open(path) as image:
        return json.dumps(dict(image.text))


def leaks(hidden: tuple[str, ...], *values) -> list[str]:
    """Which secret shows in the serialized values, or in the text chunks of any PNG they name."""
    found = []
    for value in values:
        raw = json.dumps(value, default=str)
        found += [f"{s!r} in {raw[:120]}" for s in hidden if s in raw]
        for path in {p for p in raw.replace('"', " ").split() if p.endswith(".png") and Path(p).is_file()}:
            found += [f"{s!r} in the text chunks of {path}" for s in hidden if s in png_texts(path)]
    return found


def balance(services, account) -> int:
    return services.ledger.balance(account.id)


def top_up(services, account, credits=200):
    with services.db.begin() as conn:
        services.ledger.grant(conn, account.id, credits, "test-top-up", "shared Advanced test")


def figure_of(services, account, name, seed=31):
    takes = services.figures.quick_takes(account, {"archetype": "friend"}, model="sdxl-base", takes=1, steps=2, seed=seed)
    return services.figures.save(account, name, [takes.output.request_id], takes.output.request_id, 0)


def figure_with_character(services, owner, visibility="unlisted"):
    figure = figure_of(services, owner, f"Quillon Marrowgate {secrets.token_hex(3)}")  # a name that appears nowhere else
    character = services.characters.create(owner, with_profile(fields={"name": f"Pell Avery {secrets.token_hex(2)}"}),
                                           visibility, figure_id=figure.id)
    return figure, character


def test_advanced_and_group_on_a_lent_character(make_services):
    services = make_services()
    owner, visitor = guest(services, "10.60.0.1"), guest(services, "10.60.0.2")
    top_up(services, owner), top_up(services, visitor)
    figure, character = figure_with_character(services, owner)
    hidden = (figure.id, figure.name)
    ask = dict(description="She reads by a window on a rainy afternoon.", model=MODEL, aspect_ratio="3:4", resolution="2K", seed=7)
    refusals: list[str] = []

    def refused(call, match: str) -> None:
        before = balance(services, visitor)
        with pytest.raises(UserError, match=match) as caught:
            call()
        refusals.append(str(caught.value))
        assert balance(services, visitor) == before  # nothing charged
        assert services.history.list(visitor.id, include_failed=True) == history_before

    # before its creator enables it: refused, nothing charged, nothing recorded
    history_before = services.history.list(visitor.id, include_failed=True)
    assert services.characters.get(visitor, character.id).as_dict()["advanced"] is False
    refused(lambda: services.characters.advanced_image(visitor, character_id=character.id, **ask), "not open for Advanced")

    # enabling: only a figure-backed character, and only once its figure has a picked reference sheet
    with pytest.raises(CharacterError, match="Pick a reference sheet"):
        services.characters.set_advanced(owner, character.id, True)
    plain = services.characters.create(owner, with_profile(fields={"name": "Nofig"}), "private", avatar=upload())
    with pytest.raises(CharacterError, match="not built on a figure"):
        services.characters.set_advanced(owner, plain.id, True)
    with pytest.raises(CharacterError, match="among yours"):
        services.characters.set_advanced(visitor, character.id, True)  # only its creator
    sheet = services.sheets.generate(owner, figure.id, seed=5)
    services.sheets.pick(owner, figure.id, sheet.request_id, 1)
    assert services.characters.set_advanced(owner, character.id, True).as_dict()["advanced"] is True
    assert services.characters.set_advanced(owner, character.id, True).review == character.review  # no new review

    # the switch survives a rebuild of the services (a restart)
    services = make_services()
    shown = services.characters.get(visitor, character.id).as_dict()
    assert shown["advanced"] is True and not leaks(hidden, shown)
    card = services.characters.export_card(visitor, character.id, "json")
    assert not leaks(hidden, json.loads(Path(card).read_text()))

    # Advanced: priced as Advanced on a figure, charged to the visitor, Advanced's own path (the figure's sheet)
    quote = services.catalogue.quote(MODEL, Task.REFERENCE, "3:4", "2K", 1)
    before = balance(services, visitor)
    output = services.characters.advanced_image(visitor, character_id=character.id, **ask)
    assert output.charged == quote.total and balance(services, visitor) == before - quote.total
    own = services.remix.advanced_image(owner, figure_id=figure.id, **ask)  # the creator's own Advanced, same seed
    same = ("reference", "guidance", "likeness", "style_register", "stages", "aspect_ratio", "resolution")
    assert {k: output.parameters.get(k) for k in same} == {k: own.parameters.get(k) for k in same}
    assert output.parameters["reference"] == "sheet" and own.charged == output.charged
    with Image.open(output.files[0]) as lent_png, Image.open(own.files[0]) as own_png:
        assert lent_png.tobytes() == own_png.tobytes()  # the same reference, prompt and seed make the same picture
    assert output.parameters["character_ids"] == [character.id] and "figure_ids" not in output.parameters
    record = services.history.get(visitor.id, output.request_id)
    assert record.request["context"]["remix"]["character_id"] == character.id
    assert "character_ids" in json.loads(json.loads(png_texts(output.files[0]))["playground"])
    assert not leaks(hidden, output.info(), record.as_dict())
    for entry in output.parameters.get("sim_ref") or []:  # the identity monitor names the character
        assert entry.get("character_id") == character.id and "figure_id" not in entry

    # Group: the visitor's own figure beside the character, priced per figure as Group is
    mine = figure_of(services, visitor, "Mine", seed=3)
    group_quote = services.catalogue.quote(MODEL, Task.MULTI_REFERENCE, "16:9", "2K", 1, 2)
    before = balance(services, visitor)
    group = services.characters.group_image(visitor, figure_ids=[mine.id], character_ids=[character.id],
                                            prompt="two friends at a campfire", model=MODEL, seed=3)
    assert group.charged == group_quote.total and balance(services, visitor) == before - group_quote.total
    assert group.parameters["references"] == ["canonical", "sheet"]
    assert group.parameters["figure_ids"] == [mine.id] and group.parameters["character_ids"] == [character.id]
    for entry in group.parameters.get("sim_ref") or []:
        assert set(entry["figures"]) == {mine.id} and set(entry["characters"]) == {character.id}
    history = [r.as_dict() for r in services.history.list(visitor.id, include_failed=True)]
    assert not leaks(hidden, group.info(), history)

    # revoked: refused again, nothing charged; re-enabled then made private: refused for the visitor
    services.characters.set_advanced(owner, character.id, False)
    history_before = services.history.list(visitor.id, include_failed=True)
    refused(lambda: services.characters.advanced_image(visitor, character_id=character.id, **ask), "not open for Advanced")
    refused(lambda: services.characters.group_image(visitor, figure_ids=[mine.id], character_ids=[character.id],
                                                    prompt="two friends", model=MODEL), "not open for Advanced")
    services.characters.set_advanced(owner, character.id, True)
    services.characters.update(owner, character.id, Profile.from_stored(character.profile), "private")
    refused(lambda: services.characters.advanced_image(visitor, character_id=character.id, **ask), "that you can open")
    # a key typed as a figure id opens nothing: only the characters service lends a figure
    refused(lambda: services.remix.advanced_image(visitor, figure_id=f"character:{character.id}", **ask), "among yours")
    services.characters.update(owner, character.id, Profile.from_stored(character.profile), "unlisted")
    services.sheets.clear(owner, figure.id)  # the creator's setup changed: refused without naming the figure
    refused(lambda: services.characters.advanced_image(visitor, character_id=character.id, **ask), "cannot be used in Advanced")
    assert not leaks(hidden, refusals), refusals


def test_through_the_api_the_visitor_never_sees_the_figure(app_server, client):
    _, services = app_server
    owner, visitor = (client.predict(api_name="/session_start")["token"] for _ in range(2))
    for token in (owner, visitor):
        top_up(services, services.identity.resolve(token))
    takes = client.predict(token=owner, takes=1, api_name="/figure_quick")[1]["request_id"]
    figure = client.predict(token=owner, name=f"Quillon Marrowgate {secrets.token_hex(3)}", request_id=takes, api_name="/figure_save")
    hidden = (figure["id"], figure["name"])
    character = client.predict(token=owner, name="Pell Avery", intro="A keeper of tide tables.", tags=["mystery"],
                               visibility="unlisted", greeting="The tide turns at six.", figure_id=figure["id"],
                               api_name="/character_create")
    ask = dict(figure_id="", description="She reads by a window.", character_id=character["id"], token=visitor)
    with pytest.raises(Exception, match="not open for Advanced"):
        client.predict(**ask, api_name="/advanced_image")
    with pytest.raises(Exception, match="Pick a reference sheet"):
        client.predict(token=owner, character_id=character["id"], enabled=True, api_name="/character_advanced")
    sheet = client.predict(figure_id=figure["id"], token=owner, api_name="/reference_sheet")[1]["request_id"]
    client.predict(token=owner, figure_id=figure["id"], request_id=sheet, index=0, api_name="/reference_sheet_pick")
    assert client.predict(token=owner, character_id=character["id"], enabled=True, api_name="/character_advanced")["advanced"]

    before = client.predict(visitor, api_name="/balance")["balance"]
    gallery, info, notice, _ = client.predict(**ask, api_name="/advanced_image")
    quote = services.catalogue.quote(MODEL, Task.REFERENCE, "3:4", "2K", 1).total
    assert info["charged"] == quote and client.predict(visitor, api_name="/balance")["balance"] == before - quote
    own = client.predict(token=visitor, takes=1, api_name="/figure_quick")[1]["request_id"]
    mine = client.predict(token=visitor, name="Mine", request_id=own, api_name="/figure_save")
    group = client.predict(figure_ids=[mine["id"]], prompt="two friends at a campfire", character_ids=[character["id"]],
                           token=visitor, api_name="/group_image")
    history = client.predict(token=visitor, api_name="/history")
    read = client.predict(character_id=character["id"], token=visitor, api_name="/character")
    files = [g["image"] if isinstance(g, dict) else g[0] for g in (*gallery, *group[0])]
    files = [f["path"] if isinstance(f, dict) else f for f in files]
    assert files and all(str(f).endswith(".png") for f in files)
    assert not leaks(hidden, info, notice, group[1], group[2], history, read, *files)
    for path in files:
        assert "character_ids" in png_texts(path)


@pytest.mark.browser
def test_in_the_browser_the_creator_switches_it_on_and_a_visitor_picks_it(app_server):
    """The creator ticks the switch in My characters; another visitor (a fresh browser) picks the verified character in
    Advanced's character picker and generates; the settings shown name the character, never the figure."""
    import sqlalchemy as sa

    from services.accounts.tables import accounts
    from tests.browser import browser_page, open_app
    from tests.test_characters import qa

    url, services = app_server
    with browser_page(height=1300) as page:
        open_app(page, url)
        with services.db.engine.connect() as conn:  # the browser's session: the newest account
            newest = conn.execute(sa.select(accounts.c.id).order_by(accounts.c.created_at.desc()).limit(1)).scalar()
        owner = services.identity.account(newest)
        top_up(services, owner)
        figure, character = figure_with_character(services, owner, visibility="public")
        sheet = services.sheets.generate(owner, figure.id, seed=5)
        services.sheets.pick(owner, figure.id, sheet.request_id, 0)
        moderator = qa(services)
        services.characters.review(moderator, character.id, True, revision=services.characters.review_view(moderator, character.id)["revision"])

        page.get_by_role("tab", name="Characters", exact=True).click()
        page.locator("#character-pick input").click()
        page.get_by_role("option", name=character.name, exact=False).first.click()
        page.get_by_text("Advanced for other visitors (characters built on a figure)").click()
        page.locator("#character-advanced-note").get_by_text("Only you make Advanced images").wait_for(timeout=15_000)
        page.locator("#character-advanced input").check()
        page.locator("#character-advanced-apply").click()
        page.locator("#character-advanced-note").get_by_text("Others can make Advanced and Group images").wait_for(timeout=15_000)
    assert services.characters.get(None, character.id).advanced

    with browser_page(height=1300) as page:
        open_app(page, url, "Images", "Advanced", balance="50 credits")
        page.locator("#adv-character input").click()
        page.get_by_role("option", name=character.name, exact=False).first.click()
        page.locator("#adv-price").get_by_text("= 4 credits").wait_for(timeout=10_000)
        page.locator("#adv-generate").click()
        page.locator("#adv-gallery img").first.wait_for(state="visible", timeout=120_000)
        page.locator("#account-bar").get_by_text("46 credits").wait_for(timeout=10_000)
        info = "".join(page.locator("#adv-info").inner_text().split())
        assert character.id in info and '"reference":"sheet"' in info
        assert figure.id not in info and "".join(figure.name.split()) not in info
