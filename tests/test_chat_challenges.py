"""Challenge modes with the offline rule judge, and pictures asked for in a chat (through the runner, with the
figure's canonical reference and its style register)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.types import Task
from services.chat.judge import STEP
from services.chat.pictures import compose_scene, wants_picture
from tests.chat_helpers import GOAL, GenerateSpy, account, character, fake_model, figure

TURNS = ["What a storm! Even the bread got soggy, ha.", "Tell me a joke about the storm.", "Is that soggy bread again?",
         "One more joke: the storm forgot its umbrella."]


def test_a_scripted_conversation_unlocks_a_challenge_and_the_next_call_sees_it(make_services, monkeypatch):
    services = make_services()
    owner = account(services, "10.41.0.1")
    chat = services.chats.open(owner, character(services, owner).id, seed=4)
    assert chat["challenges"] == [{"goal": GOAL["goal"], "hint": GOAL["hint"], "progress": 0, "unlocked": False,
                                   "unlocked_behaviour": None}]
    assert chat["judge"].startswith("rules (offline")
    spy = GenerateSpy(services, monkeypatch)
    state = services.chats.send(owner, chat["id"], "Good evening. How long have you lived here?")  # off the goal: no move
    assert state["challenges"][0]["progress"] == 0
    seen = []
    for n, text in enumerate(TURNS, 1):
        assert GOAL["target"] not in spy.prompts[-1]  # locked: the model does not know the target yet
        state = services.chats.send(owner, chat["id"], text)
        seen.append(state["challenges"][0]["progress"])
    assert seen == [STEP, 2 * STEP, 3 * STEP, 100]
    assert state["challenges"][0]["unlocked"] and state["challenges"][0]["unlocked_behaviour"] == GOAL["target"]
    notice = state["messages"][-1]
    assert notice["role"] == "notice" and GOAL["target"] in notice["content"] and notice["meta"] == {"unlocked": 0}
    verdicts = [m["meta"] for m in state["messages"] if m["role"] == "user"][-1]
    assert verdicts["judge"] == "rules" and verdicts["verdicts"][0]["unlocked"] is True
    services.chats.send(owner, chat["id"], "So?")
    system = spy.prompts[-1].partition("<|im_end|>")[0]
    assert "Unlocked behaviour" in system and GOAL["target"] in system  # the unlock joins the instructions
    # progress persists across a restart, and a cleared conversation starts again
    rebuilt = make_services()
    assert rebuilt.chats.get(owner, chat["id"])["challenges"][0]["progress"] == 100
    assert rebuilt.chats.clear(owner, chat["id"])["challenges"][0]["progress"] == 0


@pytest.mark.parametrize("text, asks", [("send me a picture of you at the beach", True), ("Selfie?", True),
                                        ("Can you show me a photo of the lamp room", True), ("I saw a picture once", False),
                                        ("Tell me about the storm", False)])
def test_what_counts_as_asking_for_a_picture(text, asks):
    assert wants_picture(text) is asks


def test_the_offline_composer_uses_the_wish_or_the_last_line():
    profile = {"fields": {"scenario": "A lighthouse on a storm-beaten island at dusk. Rain."}}
    assert compose_scene("Maren", profile, [], "send me a picture of you at the beach please") == \
        "Maren, at the beach, A lighthouse on a storm-beaten island at dusk."
    recent = [("user", "hi"), ("assistant", "*lights the lamp* The lamp is lit now. Come closer.")]
    assert compose_scene("Maren", profile, recent, "") == "Maren, lights the lamp, The lamp is lit now. Come closer., A lighthouse on a storm-beaten island at dusk."


def test_a_picture_keeps_the_figures_face_and_style_costs_its_quote_and_lands_in_chat_and_history(make_services, monkeypatch):
    services = make_services()
    owner = account(services, "10.41.2.1")
    maren_figure = figure(services, owner)
    maren = character(services, owner, "unlisted", figure_id=maren_figure.id)
    visitor = account(services, "10.41.2.2")  # another visitor, chatting with the unlisted character by its id
    chat = services.chats.open(visitor, maren.id, seed=9)
    calls = []
    real_run = services.runtime.run

    def spy(entry, task, request, on_step=None, cancel=None):
        calls.append((entry, task, request))
        return real_run(entry, task, request, on_step=on_step, cancel=cancel)

    monkeypatch.setattr(services.runtime, "run", spy)
    quote = services.chats.quote(visitor, chat["id"], "send me a picture of you by the lamp")
    assert quote["kind"] == "picture" and quote["price"] == chat["price"]["picture"] > 0
    before = services.ledger.balance(visitor.id)
    state = services.chats.send(visitor, chat["id"], "send me a picture of you by the lamp")
    assert services.ledger.balance(visitor.id) == before - quote["price"] == before - state["charged"]
    entry, task, request = calls[-1]
    reference = services.figures.reference(owner, maren_figure.id)
    lock = services.figures.style_lock(reference)
    if task is Task.REFERENCE:  # the canonical image itself is the reference the pipeline receives
        with Image.open(reference.image) as canonical:
            assert np.array_equal(np.asarray(request.reference_images[0]), np.asarray(canonical.convert("RGB")))
    assert lock is not None and request.prompt == lock.prompt(state["scene"])  # the figure's style register
    assert state["scene"].startswith("Maren, by the lamp")
    image = state["messages"][-1]
    assert image["role"] == "image" and image["file"] and image["generation_id"] == state["request_id"]
    assert [m["role"] for m in state["messages"]] == ["assistant", "user", "image"]
    record = services.history.get(visitor.id, state["request_id"])  # in the visitor's history
    assert record.files and record.charged == quote["price"]
    shown = str(state) + str(record.request) + str(record.parameters)
    assert maren_figure.id not in shown and maren_figure.name not in shown  # the figure stays private
    with Image.open(record.files[0]) as made:
        assert maren_figure.id not in str(made.info) and maren_figure.name not in str(made.info)
    # the instant button: a picture from the last turns, no message needed
    instant = services.chats.picture(visitor, chat["id"])
    assert instant["messages"][-1]["role"] == "image" and instant["turns"] == 1


def test_a_character_without_a_figure_sends_an_edit_of_its_main_image(make_services, monkeypatch):
    services = make_services()
    owner = account(services, "10.41.3.1")
    maren = character(services, owner, "unlisted")  # its main image is an uploaded photo
    chat = services.chats.open(owner, maren.id, seed=5)
    calls = []
    real_run = services.runtime.run
    monkeypatch.setattr(services.runtime, "run", lambda e, t, r, on_step=None, cancel=None: calls.append((t, r)) or
                        real_run(e, t, r, on_step=on_step, cancel=cancel))
    state = services.chats.picture(owner, chat["id"])
    task, request = calls[-1]
    assert task is Task.EDIT and request.prompt.startswith("Show this person: Maren")
    with Image.open(services.characters.get(owner, maren.id).image) as main:
        assert request.reference_images[0].size == main.size
    assert state["messages"][-1]["role"] == "image" and state["charged"] == state["price"]["picture"]


def test_a_real_chat_model_judges_turns_with_a_structured_prompt_inside_the_paid_turn(make_services, monkeypatch):
    from services.chat.judge import JUDGE_SYSTEM

    services = make_services()
    owner = account(services, "10.41.4.1")
    chat = services.chats.open(owner, character(services, owner).id, seed=4)
    monkeypatch.setattr(services.catalogue, "is_preview", lambda entry: False)  # as if real weights were here
    answers = iter(['{"moves": [true]}', 'Sure! {"moves": [true]}', "I think yes", '{"moves": [false]}'])

    def model(messages):
        if messages[0] == ("system", JUDGE_SYSTEM):
            assert messages[1][1].startswith("Goals:\n1. " + GOAL["goal"]) and messages[1][1].endswith(">>>")
            return next(answers)
        return "The storm rattles the glass."

    seen = fake_model(monkeypatch, model)
    assert services.chats.get(owner, chat["id"])["judge"].startswith("model (Qwen3 4B Instruct judges")
    before = services.ledger.balance(owner.id)
    progress, judges = [], []
    for text in ["Nice weather", "Hello", "Tell me about the storm", "Bye"]:
        state = services.chats.send(owner, chat["id"], text)
        progress.append(state["challenges"][0]["progress"])
        judges.append([m["meta"]["judge"] for m in state["messages"] if m["role"] == "user"][-1])
    # the model's yes moves it even without a goal word; an unreadable verdict falls back to the rules for that turn
    assert progress == [STEP, 2 * STEP, 3 * STEP, 3 * STEP]
    assert judges == ["model", "model", "rules (the model's verdict was unreadable)", "model"]
    assert services.ledger.balance(owner.id) == before - 4  # the judge is inside each message's price
    assert len(seen) == 8 and all(m[0] == ("system", JUDGE_SYSTEM) for m in seen[0::2])
