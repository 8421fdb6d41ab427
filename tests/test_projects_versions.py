"""Project versions on the tiny models (services/projects/generation.py, scenes.py): the version tree survives a
rebuild on both databases, reviews and the feed, five paid versions at once (each charged once, refunded on failure,
a sixth refused), scenes passing their shots to the pipeline within the model's reference cap, and members."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from pydantic import ValidationError

from pipelines.registry import ModelEntry
from services.accounts.tables import generations
from services.projects import ProjectError
from services.safety.policy import PromptRefused
from services.safety.uploads import InvalidUpload

NOT_YOURS = r"^No (project|card|version|ref|scene) '"


def visitor(services, ip, credits=0):
    account = services.identity.start(None, ip=ip).account
    if credits:
        with services.db.begin() as conn:
            services.ledger.adjust(conn, account.id, credits, f"test-{ip}", "projects test")
    return services.identity.account(account.id)


def settle(services, account, card_id, timeout=180):
    """Poll the card (as the UI does) until nothing on it is generating."""
    deadline = time.monotonic() + timeout
    while services.projects.card(account, card_id)["generating"]:
        assert time.monotonic() < deadline, "versions still generating"
        time.sleep(0.1)
    return services.projects.card(account, card_id)


def picture(tmp_path, name, color, size=(48, 40)):
    path = tmp_path / f"{name}.png"
    Image.new("RGB", size, color).save(path)
    return str(path)


def pixels(image):
    return np.asarray(image.convert("RGB"))


def exact(view):
    return {k: view[k] for k in ("card_id", "direction_id", "parent_version_id", "number", "prompt", "refined", "settings",
                                  "refs", "status", "file", "generation_id", "review")}


def test_the_version_tree_is_exact_after_a_rebuild_and_restore_puts_the_prompt_back(make_services):
    services = make_services()
    owner = visitor(services, "10.60.0.1", credits=100)
    project = services.projects.create_project(owner, "Lighthouse")
    card = services.projects.create_card(owner, project["id"], prompt="a lighthouse keeper at dusk", settings={"count": 3})
    quote = services.projects.quote_version(owner, card["id"])
    assert (quote["model"], quote["task"], quote["count"], quote["refs"], quote["dropped"]) == ("flux.2-dev", "text-to-image", 3, [], [])
    assert quote["total"] == 3 * quote["per_version"] == 3 * services.catalogue.quote("flux.2-dev", "text-to-image", "1:1", "1K").total
    first = services.projects.new_versions(owner, card["id"])["version_ids"]
    main = settle(services, owner, card["id"])
    v1, v2, v3 = (services.projects.version(owner, i) for i in first)
    assert [v["number"] for v in (v1, v2, v3)] == [1, 2, 3] and {v["status"] for v in (v1, v2, v3)} == {"done"}
    assert all(v["parent_version_id"] is None and v["direction_id"] == main["direction"]["id"] for v in (v1, v2, v3))
    assert len({v["settings"]["seed"] for v in (v1, v2, v3)}) == 3  # each its own request
    assert v1["settings"] == {"resolution": "1K", "aspect_ratio": "1:1", "model_class": "pro", "model": "flux.2-dev",
                              "task": "text-to-image", "seed": v1["settings"]["seed"], "scene_id": None, "dropped_refs": []}

    forked = services.projects.fork(owner, v2["id"], name="Blue hour")
    source_ref = forked["refs"][0]["id"]
    assert forked["direction"]["name"] == "Blue hour" and forked["direction"]["parent_version_id"] == v2["id"]
    services.projects.card_settings(owner, card["id"], count=2)
    typed, refined = "the keeper at blue hour", "the keeper at blue hour, cinematic, 35mm film"
    second = services.projects.new_versions(owner, card["id"], prompt=typed, refined=refined)["version_ids"]
    settle(services, owner, card["id"])
    v4, v5 = (services.projects.version(owner, i) for i in second)
    for v, number in ((v4, 4), (v5, 5)):
        assert (v["number"], v["parent_version_id"], v["direction_id"]) == (number, v2["id"], forked["direction"]["id"])
        assert (v["prompt"], v["refined"], v["refs"]) == (typed, refined, [source_ref])
        assert {k: v["settings"][k] for k in ("model", "task", "dropped_refs")} == {"model": "flux.2-dev", "task": "reference",
                                                                                      "dropped_refs": []}
    assert v4["lineage"] == [{"id": v2["id"], "number": 2}]
    assert v1["prompt"] == v1["refined"] == "a lighthouse keeper at dusk"

    again = make_services()  # a restart: everything read back from the database
    for before in (v1, v2, v3, v4, v5):
        after = again.projects.version(owner, before["id"])
        assert exact(after) == exact(before) and after["lineage"] == before["lineage"]
    assert [d["name"] for d in again.projects.card(owner, card["id"])["directions"]] == ["Main", "Blue hour"]

    restored = again.projects.restore(owner, v4["id"])
    assert restored["draft"] == typed and restored["viewing"]["id"] == v4["id"]
    restored = again.projects.restore(owner, v2["id"])
    assert restored["draft"] == "a lighthouse keeper at dusk" and restored["direction"]["id"] == main["direction"]["id"]


def test_reviews_the_showcase_filters_search_and_an_uploaded_version(make_services, tmp_path):
    services = make_services()
    owner, ana = visitor(services, "10.60.1.1", credits=100), visitor(services, "10.60.1.2", credits=100)
    project = services.projects.create_project(owner, "Posters")
    services.projects.join_project(ana, project["invite"])
    card = services.projects.create_card(owner, project["id"], prompt="a red lighthouse on a cliff", settings={"count": 2})
    mine = services.projects.new_versions(owner, card["id"])["version_ids"]
    settle(services, owner, card["id"])
    services.projects.card_settings(ana, card["id"], count=1)
    theirs = services.projects.new_versions(ana, card["id"], prompt="a fishing boat in fog")["version_ids"]
    settle(services, ana, card["id"])

    older, newer = mine
    reviewed = services.projects.review_version(owner, older, "approved")
    assert reviewed["review"] == "approved"
    services.projects.favourite(ana, newer)
    assert [services.projects.version(owner, v)["review"] for v in (older, newer, *theirs)] == ["approved", "none", "none"]
    assert [services.projects.version(owner, v)["favourite"] for v in (older, newer, *theirs)] == [False, True, False]
    with pytest.raises(ProjectError, match="review is one of"):
        services.projects.review_version(owner, newer, "great")

    def ids(**filters):
        who = filters.pop("who", owner)
        views = [services.projects.feed(who, project["id"], view=view, **filters) for view in ("cards", "gallery")]
        assert [i["id"] for i in views[0]["items"]] == [i["id"] for i in views[1]["items"]]  # same rows in both views
        assert "prompt" in views[0]["items"][0] and "prompt" not in views[1]["items"][0] if views[0]["items"] else True
        return [i["id"] for i in views[0]["items"]]

    for view in ("cards", "gallery"):
        assert [i["id"] for i in services.projects.showcase(ana, project["id"], view=view)["items"]] == [older]
    assert ids(approved=True) == [older]
    assert set(ids(mine=True)) == set(mine) and ids(who=ana, mine=True) == theirs
    assert set(ids()) == {*mine, *theirs}
    for short in ("a", " r "):
        with pytest.raises(ProjectError, match="at least 2 characters"):
            services.projects.feed(owner, project["id"], search=short)
    assert set(ids(search="LIGHTHOUSE")) == set(mine) and ids(search="boat") == theirs and ids(search="zz") == []
    assert ids(search="lighthouse", approved=True) == [older]

    balance = services.ledger.balance(ana.id)
    upload = picture(tmp_path, "retouched", (10, 120, 200))
    Image.open(upload).save(upload, pnginfo=_with_text("parameters", "secret settings"))
    uploaded = services.projects.upload_version(ana, card["id"], upload, prompt="retouched by hand")
    assert uploaded["status"] == "uploaded" and uploaded["uploaded"] and uploaded["number"] == 4
    assert uploaded["prompt"] == "retouched by hand" and uploaded["generation_id"] is None
    assert services.ledger.balance(ana.id) == balance  # free
    with Image.open(services.store.path(uploaded["file"])) as stored:
        assert not stored.text and (pixels(stored) == pixels(Image.open(upload))).all()  # no metadata, same pixels
    assert ids(search="retouched") == [uploaded["id"]]
    assert next(i for i in services.projects.feed(owner, project["id"])["items"] if i["id"] == uploaded["id"])["uploaded"]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    with pytest.raises(InvalidUpload, match="is not a PNG, JPEG, WEBP image"):  # upload hygiene, before anything is kept
        services.projects.upload_version(ana, card["id"], str(broken))
    assert len(services.projects.card(ana, card["id"])["versions"]) == 4


def _with_text(key, value):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


def test_stop_ends_the_running_version_and_those_waiting_for_the_slot(make_services, monkeypatch):
    """Three versions at once run one at a time (the visitor's one local slot): Stop ends the running one at its next
    step (refunded) and the two still waiting for the slot without charging them."""
    services = make_services()
    account = visitor(services, "10.60.2.9", credits=100)
    project = services.projects.create_project(account, "Stop")
    card = services.projects.create_card(account, project["id"], prompt="a paper boat on a puddle", settings={"count": 3})
    before = services.ledger.balance(account.id)
    running, original = threading.Event(), services.runtime.run

    def run(entry, task, request, *args, cancel=None, **kwargs):  # the first version holds its slot until stopped
        running.set()
        while not cancel.is_set():
            time.sleep(0.02)
        return original(entry, task, request, *args, cancel=cancel, **kwargs)  # the pipeline stops at its first step

    monkeypatch.setattr(services.runtime, "run", run)
    ids = services.projects.new_versions(account, card["id"])["version_ids"]
    assert running.wait(30) and len(ids) == 3
    time.sleep(0.6)  # the other two have met the busy slot at least once
    assert services.cancel(account) == 1  # one running here; the waiting ones are not runs yet
    settled = settle(services, account, card["id"], timeout=30)
    errors = sorted(v["error"] for v in settled["versions"])
    assert [v["status"] for v in settled["versions"]] == ["failed"] * 3, settled["versions"]
    assert errors == ["Generation cancelled; nothing was charged."] + ["Stopped before it started. Nothing was charged."] * 2
    assert services.ledger.balance(account.id) == before
    with services.db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(generations).where(
            generations.c.account_id == account.id)).scalar() == 1  # only the running one was ever a paid request


def test_five_versions_at_once_are_each_charged_once_refunded_on_failure_and_a_sixth_is_refused(make_services, monkeypatch):
    services = make_services()
    account = visitor(services, "10.60.2.1", credits=200)
    project = services.projects.create_project(account, "Five")
    card = services.projects.create_card(account, project["id"], prompt="a paper boat on a puddle", settings={"count": 5})
    price = services.projects.quote_version(account, card["id"])["per_version"]
    before = services.ledger.balance(account.id)

    gate, calls, original = threading.Event(), [], services.runtime.run

    def run(entry, task, request, *args, **kwargs):  # held until the gate opens; the 2nd and 4th calls fail
        calls.append(request.seed)
        assert gate.wait(60)
        if len(calls) in (2, 4):
            raise RuntimeError("CUDA error: injected")
        return original(entry, task, request, *args, **kwargs)

    monkeypatch.setattr(services.runtime, "run", run)
    for typed, refined in (("a nude portrait on a beach", "a paper boat"), ("a paper boat", "a nude portrait on a beach")):
        with pytest.raises(PromptRefused, match="rule: members_only; nothing was charged"):  # both prompts, before anything
            services.projects.new_versions(account, card["id"], prompt=typed, refined=refined)
    assert services.projects.card(account, card["id"])["versions"] == [] and not calls
    started = services.projects.new_versions(account, card["id"], idempotency_key="click-1")
    ids = started["version_ids"]
    assert len(ids) == 5 and services.projects.card(account, card["id"])["generating"] == 5
    again = services.projects.new_versions(account, card["id"], idempotency_key="click-1")  # a retried click
    assert again["version_ids"] == ids and again["replayed"]
    services.projects.card_settings(account, card["id"], count=1)
    with pytest.raises(ProjectError, match="At most 5 versions can be generating at once"):
        services.projects.new_versions(account, card["id"])
    assert len(services.projects.card(account, card["id"])["versions"]) == 5  # the sixth left nothing behind
    gate.set()
    settled = settle(services, account, card["id"])
    statuses = {v["id"]: v["status"] for v in settled["versions"]}
    assert sorted(statuses.values()) == ["done"] * 3 + ["failed"] * 2 and len(calls) == 5
    for version in settled["versions"]:
        if version["status"] == "failed":
            assert "refunded" in version["error"] and "CUDA" not in version["error"]

    with services.db.engine.connect() as conn:
        runs = {r.idempotency_key: r for r in conn.execute(sa.select(generations).where(generations.c.account_id == account.id))}
    assert set(runs) == {f"project-{i}" for i in ids}  # one paid request per version, none for the refused sixth
    entries = services.ledger.entries(account.id, limit=100)
    for version_id in ids:
        request_id = runs[f"project-{version_id}"].id
        kinds = sorted(e["kind"] for e in entries if e["request_id"] == request_id)
        if statuses[version_id] == "done":
            assert kinds == ["capture", "reserve"] and services.projects.version(account, version_id)["generation_id"] == request_id
        else:
            assert kinds == ["refund", "reserve"]
            assert next(e["amount"] for e in entries if e["request_id"] == request_id and e["kind"] == "refund") == price
    assert before - services.ledger.balance(account.id) == 3 * price


def test_a_scene_passes_its_shots_to_the_pipeline_and_refs_past_the_cap_are_ranked_or_refused(make_services, monkeypatch, tmp_path):
    services = make_services()
    account = visitor(services, "10.60.3.1", credits=100)
    project = services.projects.create_project(account, "Harbour")
    card = services.projects.create_card(account, project["id"], prompt="the keeper mends a net in the harbour")
    upload = services.projects.upload_version(account, card["id"], picture(tmp_path, "sketch", (200, 180, 20)), prompt="sketch")
    services.projects.review_version(account, upload["id"], "approved")
    approved_shot = services.projects.save_shot(account, upload["id"], name="approved sketch", kind="location")
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (90, 90, 90), (255, 255, 0), (0, 255, 255)]
    refs = [services.projects.add_ref(account, project["id"], "object", f"ref {i}", picture(tmp_path, f"ref{i}", c, (40 + i, 32)))
            for i, c in enumerate(colours)]

    seen = []
    original = services.runtime.run

    def spy(entry, task, request, *args, **kwargs):
        seen.append((entry.id, task.value, list(request.reference_images)))
        return original(entry, task, request, *args, **kwargs)

    monkeypatch.setattr(services.runtime, "run", spy)
    scene = services.projects.create_scene(account, project["id"], "Harbour at dawn")
    for ref in (refs[2], refs[0]):
        scene = services.projects.add_shot(account, scene["id"], ref["id"])
    assert [s["id"] for s in scene["shots"]] == [refs[2]["id"], refs[0]["id"]]
    assert [s["name"] for s in services.projects.scenes(account, project["id"])[0]["shots"]] == ["ref 2", "ref 0"]
    assert services.projects.set_card_scene(account, card["id"], scene["id"])["scene_id"] == scene["id"]
    pool = [refs[2], refs[0]]
    version_id = services.projects.new_versions(account, card["id"])["version_ids"][0]
    settle(services, account, card["id"])
    version = services.projects.version(account, version_id)
    assert version["status"] == "done" and version["refs"] == [r["id"] for r in pool]
    assert (version["settings"]["task"], version["settings"]["scene_id"]) == ("multi-reference", scene["id"])
    model, task, images = seen[-1]
    assert (model, task, len(images)) == ("flux.2-dev", "multi-reference", 2)
    for image, ref in zip(images, pool):  # the pipeline got the stored shots themselves, in the pool's order
        assert (pixels(image) == pixels(Image.open(services.store.path(ref["file"])))).all()

    # 7 refs for FLUX.2 [dev] (cap 6): the direction's 2 and the pool's 5; "rank" keeps the approved shot and the newest
    for ref in (approved_shot, refs[5]):
        services.projects.attach_ref(account, card["id"], ref["id"])
    for ref in (refs[1], refs[3], refs[4]):
        services.projects.add_shot(account, scene["id"], ref["id"])
    order = [approved_shot, refs[5], refs[2], refs[0], refs[1], refs[3], refs[4]]
    kept = [r for r in order if r["id"] != refs[0]["id"]]  # the oldest ref that is not an approved shot
    quote = services.projects.quote_version(account, card["id"])
    assert quote["cap"] == 6 and [r["id"] for r in quote["dropped"]] == [refs[0]["id"]]
    assert [r["id"] for r in quote["refs"]] == [r["id"] for r in kept] and "left out" in quote["text"]
    version_id = services.projects.new_versions(account, card["id"])["version_ids"][0]
    settle(services, account, card["id"])
    version = services.projects.version(account, version_id)
    assert version["refs"] == [r["id"] for r in kept] and version["settings"]["dropped_refs"] == [refs[0]["id"]]
    model, task, images = seen[-1]
    assert len(images) == 6 and all((pixels(i) == pixels(Image.open(services.store.path(r["file"])))).all()
                                    for i, r in zip(images, kept))

    services.projects.settings = services.projects.settings.model_copy(update={"over_cap": "refuse"})
    balance, calls = services.ledger.balance(account.id), len(seen)
    for attempt in (lambda: services.projects.quote_version(account, card["id"]),
                    lambda: services.projects.new_versions(account, card["id"])):
        with pytest.raises(ProjectError, match="FLUX.2 \\[dev\\] takes at most 6 reference images, and this card would use 7"):
            attempt()
    assert services.ledger.balance(account.id) == balance and len(seen) == calls
    assert services.projects.set_card_scene(account, card["id"], "")["scene_id"] is None
    assert services.projects.quote_version(account, card["id"])["task"] == "multi-reference"  # the direction's 2 refs


def test_reference_caps_are_registry_data(registry):
    caps = {e.id: e.max_references for e in registry if e.max_references is not None}
    assert caps == {"flux.1-kontext-dev": 1, "flux.2-dev": 6, "qwen-image-edit": 1, "qwen-image-edit-plus": 3,
                    "flux.2-pro": 8, "hunyuan-image-3-edit": 2, "nano-banana-2-edit": 14}
    text_only = registry.get("z-image-turbo").model_dump()
    with pytest.raises(ValidationError, match="max_references: only entries with a reference"):
        ModelEntry.model_validate(dict(text_only, max_references=2))
    with pytest.raises(ValidationError, match="max_references"):
        ModelEntry.model_validate(dict(registry.get("flux.2-dev").model_dump(), max_references=0))


def test_non_members_see_nothing_removed_members_lose_access_and_stale_drafts_are_refused(make_services, tmp_path):
    services = make_services()
    owner, ana, ben = (visitor(services, f"10.60.4.{n}", credits=50) for n in (1, 2, 3))
    project = services.projects.create_project(owner, "Secret")
    card = services.projects.create_card(owner, project["id"], prompt="a quiet harbour")
    version_id = services.projects.new_versions(owner, card["id"])["version_ids"][0]
    settle(services, owner, card["id"])
    ref = services.projects.add_ref(owner, project["id"], "location", "harbour", picture(tmp_path, "harbour", (0, 80, 160)))
    scene = services.projects.create_scene(owner, project["id"], "Dawn")
    upload = picture(tmp_path, "mine", (1, 2, 3))
    p, c, v, r, s, P = project["id"], card["id"], version_id, ref["id"], scene["id"], services.projects

    def attempts(who):
        return {
            "cards": lambda: P.cards(who, p), "card": lambda: P.card(who, c), "version": lambda: P.version(who, v),
            "feed": lambda: P.feed(who, p), "showcase": lambda: P.showcase(who, p), "refs": lambda: P.refs(who, p),
            "scenes": lambda: P.scenes(who, p), "scene": lambda: P.scene(who, s), "quote": lambda: P.quote_version(who, c),
            "new_versions": lambda: P.new_versions(who, c, prompt="a harbour"),
            "upload_version": lambda: P.upload_version(who, c, upload), "fork": lambda: P.fork(who, v),
            "review": lambda: P.review_version(who, v, "approved"), "favourite": lambda: P.favourite(who, v),
            "restore": lambda: P.restore(who, v), "save_draft": lambda: P.save_draft(who, c, "mine now", 0),
            "attach_ref": lambda: P.attach_ref(who, c, r), "save_shot": lambda: P.save_shot(who, v),
            "add_shot": lambda: P.add_shot(who, s, r), "set_card_scene": lambda: P.set_card_scene(who, c, s),
            "create_scene": lambda: P.create_scene(who, p, "Mine"), "add_ref": lambda: P.add_ref(who, p, "object", "x", upload),
        }

    balance = services.ledger.balance(ana.id)
    for name, attempt in attempts(ana).items():
        with pytest.raises(ProjectError, match=NOT_YOURS):
            attempt()
    assert services.ledger.balance(ana.id) == balance
    state = P.card(owner, c)
    assert (state["draft"], len(state["versions"]), state["scene_id"]) == ("a quiet harbour", 1, None)  # nothing changed
    assert (state["versions"][0]["review"], len(state["directions"]), len(P.refs(owner, p))) == ("none", 1, 1)
    assert [len(x["shots"]) for x in P.scenes(owner, p)] == [0]

    P.add_member(owner, p, ana.id)
    P.add_member(owner, p, ben.id)
    assert P.card(ana, c)["draft"] == "a quiet harbour" and P.refs(ana, p)[0]["id"] == r
    P.remove_member(owner, p, ana.id)
    for name in ("card", "version", "feed", "scenes", "new_versions", "save_draft"):
        with pytest.raises(ProjectError, match=NOT_YOURS):
            attempts(ana)[name]()

    opened = P.card(ben, c)["revision"]
    assert P.card(owner, c)["revision"] == opened
    P.save_draft(owner, c, "a quiet harbour at first light", opened)
    with pytest.raises(ProjectError, match="Someone saved this card's prompt since you opened it"):
        P.save_draft(ben, c, "a stormy harbour", opened)
    assert P.card(ben, c)["draft"] == "a quiet harbour at first light"  # the first save kept, the second refused
    assert P.save_draft(ben, c, "a stormy harbour", P.card(ben, c)["revision"])["draft"] == "a stormy harbour"

    other = P.create_project(ben, "Elsewhere")
    foreign = P.add_ref(ben, other["id"], "object", "theirs", upload)
    with pytest.raises(ProjectError, match="No ref .* in this card's project"):
        P.attach_ref(ben, c, foreign["id"])
    with pytest.raises(ProjectError, match="No ref .* in this scene's project"):
        P.add_shot(ben, s, foreign["id"])


def test_a_forks_source_image_is_kept_first_past_the_cap(make_services, tmp_path):
    services = make_services()
    P = services.projects
    account = visitor(services, "10.60.5.1")
    project = P.create_project(account, "Ranks")
    card = P.create_card(account, project["id"], prompt="a lantern")
    upload = P.upload_version(account, card["id"], picture(tmp_path, "lantern", (250, 200, 0)), prompt="lantern")
    source = P.fork(account, upload["id"], name="Warm")["refs"][0]
    newer = [P.add_ref(account, project["id"], "object", f"n{i}", picture(tmp_path, f"n{i}", (i * 30, 0, 0))) for i in range(7)]
    for ref in newer:
        P.attach_ref(account, card["id"], ref["id"])
    quote = P.quote_version(account, card["id"])  # 8 refs for a cap of 6: nothing runs to show this
    assert [r["id"] for r in quote["refs"]] == [source["id"]] + [r["id"] for r in newer[2:]]
    assert [r["id"] for r in quote["dropped"]] == [r["id"] for r in newer[:2]]


def test_versions_left_generating_by_a_restart_are_settled_by_the_next_click(make_services):
    from services.accounts.tables import project_versions
    from services.projects.generation import STALE_S

    services = make_services()
    account = visitor(services, "10.60.6.1", credits=50)
    project = services.projects.create_project(account, "Restart")
    card = services.projects.create_card(account, project["id"], prompt="a tide pool")
    done_id = services.projects.new_versions(account, card["id"])["version_ids"][0]
    done = settle(services, account, card["id"])["versions"][0]
    with services.db.begin() as conn:  # as a stopped instance leaves them: one whose run finished, one that never ran
        conn.execute(project_versions.update().where(project_versions.c.id == done_id).values(status="generating", file=None))
        conn.execute(project_versions.insert().values(
            id="lost0000lost0000", card_id=card["id"], direction_id=done["direction_id"], number=2, prompt="a tide pool",
            refined="a tide pool", settings={}, refs=[], status="generating", created_by=account.id,
            created_at=time.time() - STALE_S - 1))
    rebuilt = make_services()
    assert rebuilt.projects.card(account, card["id"])["generating"] == 2
    rebuilt.projects.new_versions(account, card["id"])
    after = {v["id"]: v for v in settle(rebuilt, account, card["id"])["versions"]}
    assert (after[done_id]["status"], after[done_id]["file"]) == ("done", done["file"])
    assert after["lost0000lost0000"]["status"] == "failed" and "nothing was charged" in after["lost0000lost0000"]["error"]
    assert [v["number"] for v in after.values()] == [1, 2, 3]
