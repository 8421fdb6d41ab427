"""The refine chat on a project card: the offline refiner's questions, suggestions and one-at-a-time changes (pure and
deterministic), the chat kept on the card across a rebuild (SQLite and PostgreSQL), members only, and with a real
language model (a fake one through the chat family's runner) a paid turn at the quoted price and a low temperature."""
from __future__ import annotations

import pytest

from pipelines.types import Task
from services.projects import ProjectError
from services.projects.refiner import OfflineRefiner, RefinerFileError, load_refiner_presets
from services.safety.policy import PromptRefused
from tests.chat_helpers import fake_model

HAT = "a woman in a cafe, wearing a red wool hat, soft window light, medium shot"


@pytest.fixture(scope="module")
def refiner() -> OfflineRefiner:
    return OfflineRefiner()


def account(services, ip: str):
    return services.identity.start(None, ip=ip).account


def card(services, owner, draft: str = "a woman in a cafe"):
    project = services.projects.create_project(owner, "Cafe series")
    return project, services.projects.create_card(owner, project["id"], "Barista", draft)


# -- the offline refiner (pure) ---------------------------------------------------------------------------------
def test_a_prompt_plus_two_clicked_suggestions_contains_both(refiner):
    asked = {q["aspect"]: q["suggestions"] for q in refiner.questions("a woman in a cafe")}
    picked = [asked["lighting"][0], asked["camera"][0]]
    change = refiner.apply_suggestions("a woman in a cafe", picked)
    assert change.changed and change.prompt.startswith("a woman in a cafe, ")
    assert all(p in change.prompt for p in picked), change
    assert change.prompt == "a woman in a cafe, soft window light, close-up portrait"
    assert refiner.apply_suggestions(change.prompt, picked[:1]).changed is False  # never added twice


def test_remove_the_hat_removes_that_phrase_and_nothing_else(refiner):
    change = refiner.apply_change(HAT, "remove the hat")
    assert change.prompt == "a woman in a cafe, soft window light, medium shot" and change.changed
    assert "wearing a red wool hat" in change.said
    # a hat phrase inside the subject's clause: only that part goes
    inside = refiner.apply_change("a woman wearing a red hat in a cafe, soft light", "please remove the hat")
    assert inside.prompt == "a woman in a cafe, soft light"
    assert refiner.apply_change("a man with a hat and a scarf, at dusk", "no hat").prompt == "a man with a scarf, at dusk"
    missing = refiner.apply_change(HAT, "remove the dog")
    assert missing.prompt == HAT and not missing.changed and "no “dog”" in missing.said


def test_questions_ask_only_about_what_the_prompt_does_not_cover(refiner):
    assert [q["aspect"] for q in refiner.questions("")] == ["subject", "setting", "lighting", "camera", "style"]
    assert [q["aspect"] for q in refiner.questions("a woman in a cafe")] == ["lighting", "camera", "style"]
    assert [q["aspect"] for q in refiner.questions("a woman in a cafe, golden hour, side profile view")] == ["style"]
    assert refiner.questions("a woman in a cafe, soft window light, close-up portrait, oil painting") == []
    for question in refiner.questions(""):
        assert 4 <= len(question["suggestions"]) <= 8 and question["question"] and question["label"]


def test_a_change_it_does_not_understand_changes_nothing_and_says_what_it_understands(refiner):
    change = refiner.apply_change(HAT, "make her dance wildly")
    assert change.prompt == HAT and change.changed is False
    assert "did not understand “make her dance wildly”" in change.said and "offline refiner (deterministic)" in change.said
    for known in ("closer", "profile", "make it night", "watercolor", "remove the X", "add X", "replace X with Y"):
        assert known in change.said
    assert "Nothing changed" in change.said


def test_closer_replaces_the_framing_phrase_and_each_change_is_one_change(refiner):
    assert refiner.apply_change(HAT, "closer").prompt == "a woman in a cafe, wearing a red wool hat, soft window light, close-up shot"
    assert refiner.apply_change("a close-up portrait of a woman", "wider").prompt == "a wide shot of a woman"
    assert refiner.apply_change("a woman in a cafe, close-up shot", "closer").changed is False  # already that close
    profile = refiner.apply_change("a woman in a cafe, high angle, seen from above", "switch to profile angle")
    assert profile.prompt == "a woman in a cafe, side profile view"  # the old angle's phrases go, nothing else
    assert refiner.apply_change(HAT, "make it night").prompt == "a woman in a cafe, wearing a red wool hat, at night under moonlight, medium shot"
    assert refiner.apply_change("a photo of a woman", "make it a watercolor").prompt == "a watercolor painting of a woman"
    assert refiner.apply_change(HAT, "add a red scarf").prompt == \
        "a woman in a cafe, wearing a red wool hat, with a red scarf, soft window light, medium shot"
    assert refiner.apply_change(HAT, "replace the cafe with a library").prompt == HAT.replace("cafe", "library")
    two = refiner.apply_change(HAT, "closer and remove the hat")  # one at a time: the first, the rest asked for next
    assert two.prompt == refiner.apply_change(HAT, "closer").prompt and "send “remove the hat” next" in two.said


def test_a_malformed_refiner_file_names_the_file_and_field(tmp_path):
    text = load_refiner_presets.__globals__["DEFAULT_FILE"].read_text(encoding="utf-8")
    bad = tmp_path / "refiner.toml"
    bad.write_text(text.replace('"soft window light", "golden hour sunlight"', '"soft, window light", "golden hour sunlight"', 1))
    with pytest.raises(RefinerFileError, match=r"refiner\.toml: aspects\.2\.suggestions"):
        load_refiner_presets(bad)


# -- the refine chat on a card (SQLite and PostgreSQL) -----------------------------------------------------------
def test_the_offline_chat_is_free_says_so_and_survives_a_rebuild(make_services):
    services = make_services()
    owner = account(services, "10.61.0.1")
    _, barista = card(services, owner)
    state = services.projects.refine_state(owner, barista["id"])
    assert state["phase"] == "before" and state["base"] == "a woman in a cafe" and state["messages"] == []
    assert [q["aspect"] for q in state["questions"]] == ["lighting", "camera", "style"]
    assert state["refiner"] == {"name": "offline refiner (deterministic)", "model": None, "offline": True, "price": 0, "text": "free"}
    assert services.projects.refine_quote(owner, barista["id"]) == state["refiner"]
    before = services.ledger.balance(owner.id)
    out = services.projects.refine_suggest(owner, barista["id"], ["soft window light", "close-up portrait"])
    assert out["proposal"] == "a woman in a cafe, soft window light, close-up portrait" and out["charged"] == 0
    assert "offline refiner (deterministic)" in out["said"] and services.ledger.balance(owner.id) == before
    assert out["offer"] == {"prompt": "a woman in a cafe", "refined": out["proposal"]}  # New Version: typed and refined
    assert [q["aspect"] for q in out["questions"]] == ["style"]
    user, answer = out["messages"]
    assert user["role"] == "user" and user["content"] == "Add: soft window light; close-up portrait" and user["by"] == owner.id
    assert answer["role"] == "assistant" and answer["prompt"] == out["proposal"] and answer["offline"] is True  # expandable
    changed = services.projects.refine_change(owner, barista["id"], "closer")  # the next change starts from the proposal
    assert changed["proposal"] == "a woman in a cafe, soft window light, close-up shot"
    unknown = services.projects.refine_change(owner, barista["id"], "make her dance")
    assert unknown["changed"] is False and unknown["proposal"] == changed["proposal"] and "I can only" in unknown["said"]
    assert unknown["messages"][-1]["prompt"] is None
    typed = services.projects.refine_change(owner, barista["id"], "remove the hat", prompt="a man wearing a hat, at dusk")
    assert typed["proposal"] == "a man, at dusk"  # an explicit prompt (the editor's text) is refined instead

    again = make_services()  # a restart: the chat, its proposals and questions are where they were
    kept = again.projects.refine_state(owner, barista["id"])
    assert kept["messages"] == typed["messages"] and len(kept["messages"]) == 8
    assert kept["proposal"] == kept["base"] == "a man, at dusk" and kept["offer"]["refined"] == "a man, at dusk"
    cleared = again.projects.refine_clear(owner, barista["id"])
    assert cleared["messages"] == [] and cleared["base"] == "a woman in a cafe"


def test_the_chat_keeps_its_newest_messages(make_services):
    services = make_services()
    owner = account(services, "10.61.1.1")
    _, barista = card(services, owner, "a woman in a cafe, medium shot")
    for i in range(26):  # 52 messages
        services.projects.refine_change(owner, barista["id"], "closer" if i % 2 else "wider")
    messages = services.projects.refine_state(owner, barista["id"])["messages"]
    assert len(messages) == 50 and messages[-1]["content"].startswith("Framing: “wide shot” → “close-up shot”")
    assert messages[0]["role"] == "user"  # whole exchanges go


def test_only_members_read_or_change_a_cards_refine_chat(make_services):
    services = make_services()
    owner, member, stranger = (account(services, f"10.61.2.{i}") for i in (1, 2, 3))
    project, barista = card(services, owner)
    services.projects.refine_suggest(owner, barista["id"], ["neon glow"])
    for call in (lambda: services.projects.refine_state(stranger, barista["id"]),
                 lambda: services.projects.refine_quote(stranger, barista["id"]),
                 lambda: services.projects.refine_suggest(stranger, barista["id"], ["wide shot"]),
                 lambda: services.projects.refine_change(stranger, barista["id"], "closer"),
                 lambda: services.projects.refine_clear(stranger, barista["id"])):
        with pytest.raises(ProjectError, match="No card"):
            call()
    services.projects.add_member(owner, project["id"], member.id)
    shared = services.projects.refine_change(member, barista["id"], "closer")
    assert shared["messages"][-2]["by"] == member.id and len(shared["messages"]) == 4
    services.projects.remove_member(owner, project["id"], member.id)
    with pytest.raises(ProjectError, match="No card"):
        services.projects.refine_state(member, barista["id"])  # at once
    services.projects.archive_project(owner, project["id"])
    with pytest.raises(ProjectError, match="archived"):
        services.projects.refine_change(owner, barista["id"], "wider")
    assert len(services.projects.refine_state(owner, barista["id"])["messages"]) == 4  # still readable


def test_a_refused_instruction_changes_nothing(make_services):
    services = make_services()
    guest = account(services, "10.61.3.1")
    _, barista = card(services, guest)
    with pytest.raises(PromptRefused, match="members"):
        services.projects.refine_change(guest, barista["id"], "add a naked model")
    with pytest.raises(PromptRefused, match="members"):
        services.projects.refine_suggest(guest, barista["id"], ["naked"])
    assert services.projects.refine_state(guest, barista["id"])["messages"] == []


# -- with a language model -----------------------------------------------------------------------------------
@pytest.fixture
def real_model(monkeypatch):
    """Chat models count as real (not the offline preview); the chat family's runner is a fake model that records
    each request's temperature and conversation."""
    from pipelines.family import get_family

    def use(services, reply: str):
        original = services.catalogue.is_preview
        monkeypatch.setattr(services.catalogue, "is_preview", lambda e: False if Task.CHAT in e.tasks else original(e))
        seen = fake_model(monkeypatch, lambda messages: reply)
        runners, temperatures = get_family("causal-lm").runners, []
        inner = runners[Task.CHAT]

        def spy(pipe, request, on_step, cancel):
            temperatures.append(request.temperature)
            return inner(pipe, request, on_step, cancel)

        monkeypatch.setitem(runners, Task.CHAT, spy)
        return seen, temperatures

    return use


def test_with_a_model_a_change_is_a_paid_turn_at_a_low_temperature(make_services, real_model):
    services = make_services()
    seen, temperatures = real_model(services, "Revised prompt: \"a woman in a cafe, close-up shot, soft window light\"")
    owner = account(services, "10.61.4.1")
    _, barista = card(services, owner, "a woman in a cafe, medium shot, soft window light")
    entry = services.catalogue.chat_entries()[0]
    quote = services.projects.refine_quote(owner, barista["id"])
    assert quote["offline"] is False and quote["name"] == entry.name
    assert quote["price"] == services.catalogue.price(entry, Task.CHAT, "message").total > 0
    before = services.ledger.balance(owner.id)
    out = services.projects.refine_change(owner, barista["id"], "closer")
    assert services.ledger.balance(owner.id) == before - quote["price"] and out["charged"] == quote["price"]  # the ledger
    assert out["proposal"] == "a woman in a cafe, close-up shot, soft window light"  # the model's reply, cleaned
    assert temperatures == [0.2]
    system, user = seen[-1]
    assert system[0] == "system" and "revised image prompt only" in system[1]
    assert user == ("user", "Current image prompt: a woman in a cafe, medium shot, soft window light\nChange exactly one thing: closer")
    answer = out["messages"][-1]
    assert answer["refiner"] == entry.name and answer["offline"] is False and answer["generation_id"] == out["request_id"]
    assert entry.name in out["said"] and "offline" not in out["said"]
    record = services.history.get(owner.id, out["request_id"])
    assert record.task == "chat" and record.charged == quote["price"]
    again = services.projects.refine_change(owner, barista["id"], "closer", idempotency_key="k1")
    replay = services.projects.refine_change(owner, barista["id"], "closer", idempotency_key="k1")
    assert replay["request_id"] == again["request_id"] and len(replay["messages"]) == 4  # stored once
    suggested = services.projects.refine_suggest(owner, barista["id"], ["oil painting"])
    assert "Work these details in, worded naturally: oil painting" in seen[-1][1][1] and suggested["charged"] == quote["price"]


def test_with_a_model_a_refused_instruction_is_refused_before_any_charge(make_services, real_model):
    services = make_services()
    seen, _ = real_model(services, "a woman in a cafe")
    guest = account(services, "10.61.5.1")
    _, barista = card(services, guest)
    before = services.ledger.balance(guest.id)
    with pytest.raises(PromptRefused, match="members"):
        services.projects.refine_change(guest, barista["id"], "make her naked")
    assert services.ledger.balance(guest.id) == before and seen == []
    assert [r for r in services.history.list(guest.id, include_failed=True) if r.task == "chat"] == []
    assert services.projects.refine_state(guest, barista["id"])["messages"] == []
