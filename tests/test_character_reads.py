"""Reads cost what they show: no by-id read, list, catalogue page, gallery or review queue loads a character's stored
card (only an export and the moderator's review view do); the catalogue filters in the database; exports leave one
file per content and are swept. Moderation binds to what the moderator saw: the review view shows every published
field, and a verdict on an older revision is refused. On SQLite and PostgreSQL."""
from __future__ import annotations

import html
import re
import time
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from services.accounts.tables import characters
from services.creation.characters import CharacterError, Profile
from services.creation.characters import card_files
from services.creation.text import TextToImageParams
from ui.moderation import review_text

from .test_characters import guest, qa, upload, with_profile

BIG_CARD = 20_000_000  # characters of card memory, as a card stored before the limits (or written by hand) may hold


@contextmanager
def statements(engine):
    """Every SQL statement the block issues, as text."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def reads_card(statement: str) -> bool:
    """A SELECT that returns the characters.card column (or every column of characters)."""
    head = statement.split(" FROM ")[0]
    return bool(re.search(r"\bcharacters\.card\b", head) or re.search(r"SELECT\s+\*", head)) and head.lstrip().upper().startswith("SELECT")


def test_no_read_but_export_loads_a_large_card_and_each_stays_fast(make_services):
    services = make_services(admin_secret="qa-key-for-the-reads-test-0123456789ab")
    owner, visitor, moderator = guest(services), guest(services, ip="10.4.0.2"), qa(services)
    made = services.text.text_to_image(owner, TextToImageParams("the cartographer at her desk", "sdxl-base", steps=2, seed=3))
    public = services.characters.create(owner, with_profile(fields={"name": "Heavy Hana"}, tags=("pirate",)), "public", avatar=upload())
    services.characters.gallery_add(owner, public.id, made.request_id, 0)
    pending = services.characters.create(owner, with_profile(fields={"name": "Pending Pol"}), "public", avatar=upload())
    view = services.characters.review_view(moderator, public.id)
    services.characters.review(moderator, public.id, True, revision=view["revision"])
    with services.db.begin() as conn:  # a 20 MB card written straight into the database, on both characters
        for cid in (public.id, pending.id):
            conn.execute(characters.update().where(characters.c.id == cid).values(card={"extra": {"blob": "x" * BIG_CARD}}))

    reads = {
        "/character": lambda: services.characters.get(visitor, public.id),
        "/characters": lambda: services.characters.list(owner),
        "/catalogue": lambda: services.characters.catalogue(),
        "/catalogue by tag": lambda: services.characters.catalogue(tag="PIRATE"),
        "/character_gallery": lambda: services.characters.gallery(visitor, public.id),
        "/review_characters": lambda: services.characters.review_queue(moderator),
    }
    for name, read in reads.items():
        read()  # warm (first-use imports and pools are not what is measured)
        with statements(services.db.engine) as seen:
            started = time.perf_counter()
            read()
            elapsed = time.perf_counter() - started
        assert seen, name
        loading = [s for s in seen if reads_card(s)]
        assert not loading, f"{name} read the card column: {loading[0][:200]}"
        assert elapsed < 0.2, f"{name} took {elapsed * 1000:.0f} ms"
    assert [c["name"] for c in services.characters.catalogue(tag="pirate")["characters"]] == ["Heavy Hana"]

    with statements(services.db.engine) as seen:  # the export is the read that needs it
        services.characters.export_card(owner, public.id, "json")
    assert any(reads_card(s) for s in seen)


def test_catalogue_filters_and_pages_in_the_database(make_services):
    services = make_services(admin_secret="qa-key-for-the-reads-test-0123456789ab")
    owner, moderator = guest(services), qa(services)
    made = []
    for n, (name, tags) in enumerate([("Ölga Storm", ("pirate", "Mentor")), ("Olaf Quay", ("pirate",)),
                                      ("Percy 100%_", ("villain",)), ("Ola Ray", ("mentor",))]):
        c = services.characters.create(owner, with_profile(fields={"name": name}, tags=tags), "public", avatar=upload())
        services.characters.review(moderator, c.id, True, revision=services.characters.review_view(moderator, c.id)["revision"])
        made.append(c)
    catalogue = services.characters.catalogue
    with statements(services.db.engine) as seen:
        found = catalogue(query="ÖLGA")
    assert [c["name"] for c in found["characters"]] == ["Ölga Storm"]
    listing = [s for s in seen if "FROM characters" in s and "LIMIT" in s.upper()]
    assert listing and "name_key" in listing[0], "the name filter is in the SQL, not in Python"
    assert {c["name"] for c in catalogue(tag="MENTOR")["characters"]} == {"Ölga Storm", "Ola Ray"}
    assert [c["name"] for c in catalogue(query="ol", tag="pirate")["characters"]] == ["Olaf Quay"]  # "Öl" is not "ol"
    assert [c["name"] for c in catalogue(query="100%_")["characters"]] == ["Percy 100%_"]  # LIKE wildcards are literal
    assert catalogue(query="%")["total"] == 1
    # renaming and retagging move the search columns with the profile
    services.characters.update(owner, made[1].id, with_profile(fields={"name": "Quay Olsen"}, tags=("sailor",)), "public")
    services.characters.review(moderator, made[1].id, True, revision=services.characters.review_view(moderator, made[1].id)["revision"])
    assert [c["name"] for c in catalogue(tag="sailor")["characters"]] == ["Quay Olsen"]
    assert catalogue(tag="pirate")["total"] == 1
    # pages: newest change first, sized by the limits file
    size = services.characters.limits.catalogue_page_size
    total = catalogue()["total"]
    assert total == 4 and catalogue(page=1)["pages"] == -(-total // size)
    indexes = {i["name"] for i in sa.inspect(services.db.engine).get_indexes("characters")}
    assert "ix_characters_listing" in indexes
    assert any(i["column_names"] == ["tag"] for i in sa.inspect(services.db.engine).get_indexes("character_tags"))


def test_exports_keep_one_file_per_content_and_are_swept(make_services, monkeypatch):
    services = make_services()
    owner = guest(services)
    character = services.characters.create(owner, with_profile(), "private", avatar=upload())
    root = services.store.root

    def files() -> set:
        return {p for p in root.rglob("*") if p.is_file()}

    before = files()
    first = services.characters.export_card(owner, character.id, "json")
    again = services.characters.export_card(owner, character.id, "json")
    assert first == again and files() - before == {first}  # one stored copy, reused for the same content
    services.characters.update(owner, character.id, with_profile(intro="Changed intro for a new export."), "private")
    monkeypatch.setattr(card_files, "EXPORT_KEEP_S", 0.0)
    time.sleep(0.01)
    changed = services.characters.export_card(owner, character.id, "json")
    assert changed != first and not first.exists()  # the stale export was swept
    assert files() - before == {changed}


FULL = Profile(
    fields={"name": "Marker Mae", "description": "MK-description", "personality": "MK-personality", "scenario": "MK-scenario",
            "first_mes": "MK-greeting", "mes_example": "MK-examples", "system_prompt": "MK-system",
            "post_history_instructions": "MK-posthistory", "creator_notes": "MK-creatornotes", "creator": "MK-creator"},
    intro="MK-intro", tags=("mk-tag-one", "mk-tag-two"),
    opening_messages=("MK-alt-greeting-1", "MK-alt-greeting-2", "MK-alt-greeting-3"),
    persona_cards=({"name": "MK-persona-name", "description": "MK-persona-description"},),
    challenge_modes=({"goal": "MK-challenge-goal", "target": "MK-challenge-target", "hint": "MK-challenge-hint"},),
)


def as_read(markdown: str) -> str:
    """The panel's text as a visitor reads it (Markdown escapes and entities resolved)."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def markers(profile: Profile) -> set[str]:
    found = set(re.findall(r"MK-[\w-]+|mk-tag-\w+", repr(profile)))
    assert len(found) >= 20
    return found


def test_review_view_shows_every_published_field_and_verdicts_bind_to_the_revision(make_services):
    services = make_services(admin_secret="qa-key-for-the-reads-test-0123456789ab")
    owner, moderator = guest(services), qa(services)
    character = services.characters.create(owner, FULL, "public", avatar=upload())
    with services.db.begin() as conn:  # a field kept from an imported card is published by the export too
        conn.execute(characters.update().where(characters.c.id == character.id).values(
            card={"extra": {"character_book": {"entries": [{"content": "MK-lorebook"}]}}, "extensions": {"other": "MK-ext"}}))
    view = services.characters.review_view(moderator, character.id)
    shown_service, shown_ui = repr(view), as_read(review_text(view))
    for marker in markers(FULL) | {"MK-lorebook", "MK-ext"}:
        assert marker in shown_service, f"the review view misses {marker}"
        assert marker in shown_ui, f"the moderation panel misses {marker}"
    assert view["character"]["image"]  # the main image is shown

    # The owner edits after the moderator opened it: the verdict is refused and it stays pending with a new revision.
    services.characters.update(owner, character.id, Profile(**{**FULL.__dict__, "intro": "MK-intro changed after review"}), "public")
    with pytest.raises(CharacterError, match="changed .* after you opened it"):
        services.characters.review(moderator, character.id, True, revision=view["revision"])
    assert services.characters.get(owner, character.id).review == "pending"
    assert services.characters.catalogue()["total"] == 0
    with pytest.raises(CharacterError, match="Name the revision"):
        services.characters.review(moderator, character.id, True)
    fresh = services.characters.review_view(moderator, character.id)
    assert fresh["revision"] > view["revision"] and "MK-intro changed after review" in as_read(review_text(fresh))
    services.characters.set_main(owner, character.id, "upload", upload=upload().upload)  # a new main image is a change too
    with pytest.raises(CharacterError, match="after you opened it"):
        services.characters.review(moderator, character.id, True, revision=fresh["revision"])
    latest = services.characters.review_view(moderator, character.id)["revision"]
    services.characters.review(moderator, character.id, True, revision=latest)
    assert services.characters.catalogue()["total"] == 1
