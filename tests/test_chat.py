"""Chat with a character on the tiny local chat model (a random Qwen3 through transformers, loaded through the
runtime's real path): the greeting, the seeded opener, persona cards in every turn, a message charged its quote and
refunded on failure, streaming, persistence across a services rebuild, rename / clear / delete, the window."""
from __future__ import annotations

import pytest

from services.chat import ChatError
from services.errors import InvalidRequest
from tests.chat_helpers import CHARACTER, OPENERS, PERSONA, SECRET, GenerateSpy, account, character


def test_a_conversation_starts_with_the_greeting_and_offers_a_seeded_opener(make_services):
    services = make_services()
    owner = account(services, "10.40.0.1")
    maren = character(services, owner)
    first = services.chats.open(owner, maren.id, persona=0, seed=7)
    assert first["messages"][0] == {"idx": 0, "role": "assistant", "content": "Welcome to the lighthouse, Ines. I'm Maren.",
                                    "generation_id": None, "file": None, "meta": {}}
    assert first["opener"] in OPENERS and first["seed"] == 7
    again = services.chats.open(owner, maren.id, seed=7)
    assert again["opener"] == first["opener"] and again["id"] != first["id"]  # the same seed offers the same opener
    assert len({services.chats.open(owner, maren.id, seed=s)["opener"] for s in range(12)}) > 1  # and seeds differ
    assert first["model"]["id"] == "qwen3-4b-instruct" and first["model"]["preview"] is True
    assert [m["id"] for m in first["models"]] == ["qwen3-4b-instruct", "qwen3-32b"]
    assert first["personas"] == ["Ines", "Tom"] and first["persona"] == 0
    assert SECRET not in str(first)  # the hidden instructions never reach the visitor
    stranger = account(services, "10.40.0.2")
    with pytest.raises(ChatError, match="No character"):
        services.chats.open(stranger, maren.id)  # a private character is its owner's alone
    with pytest.raises(ChatError, match="persona card"):
        services.chats.open(owner, maren.id, persona=5)


def test_a_reply_streams_sees_the_persona_costs_its_quote_and_survives_a_rebuild(make_services, monkeypatch):
    services = make_services()
    owner = account(services, "10.40.1.1")
    maren = character(services, owner)
    chat = services.chats.open(owner, maren.id, persona=0, seed=3)
    spy = GenerateSpy(services, monkeypatch)
    quote = services.chats.quote(owner, chat["id"], "Hello there")
    assert quote == {"kind": "reply", "price": 1, "text": "1 × 1 = 1 credit"}
    before = services.ledger.balance(owner.id)
    pieces, steps = [], []
    out = services.chats.send(owner, chat["id"], "Hello there, keeper", on_text=pieces.append, on_step=lambda d, t: steps.append((d, t)))
    assert services.ledger.balance(owner.id) == before - quote["price"] == before - out["charged"]
    # streamed in order, STREAM_BEHIND characters behind the check (the final reply replaces it when the turn ends)
    assert out["reply"].startswith("".join(pieces).strip()) and out["preview"] is True
    assert len("".join(pieces)) == max(0, len(out["reply"]) - 48) or len(out["reply"]) != len(out["reply"].strip())
    assert steps and steps[-1][0] <= steps[-1][1] and len(steps) > 1
    prompt = spy.prompts[-1]
    system, _, rest = prompt.partition("<|im_end|>")
    assert system.startswith("<|im_start|>system") and SECRET in system and PERSONA in system  # persona in the system turn
    assert "Keep replies under three sentences." in system
    assert "<|im_start|>assistant\nWelcome to the lighthouse, Ines. I'm Maren.<|im_end|>" in rest
    assert rest.rstrip().endswith("<|im_start|>user\nHello there, keeper<|im_end|>\n<|im_start|>assistant")
    # the record: a chat run in history with its reply, priced per message
    record = services.history.get(owner.id, out["request_id"])
    assert record.task == "chat" and record.parameters["reply"] == out["reply"] and record.charged == 1
    assert record.parameters["notice"].startswith("offline preview: replies are noise")
    assert all(r.task != "chat" for r in services.history.list(owner.id, media_only=True))  # the History gallery's read
    # a second turn: the persona's text reaches the model again; a rebuild keeps everything
    services.chats.send(owner, chat["id"], "Tell me about the lamp")
    assert PERSONA in spy.prompts[-1] and "Hello there, keeper" in spy.prompts[-1]
    rebuilt = make_services()
    kept = rebuilt.chats.get(owner, chat["id"])
    assert [m["role"] for m in kept["messages"]] == ["assistant", "user", "assistant", "user", "assistant"]
    assert kept["messages"][2]["content"] == out["reply"] and kept["turns"] == 2 and kept["opener"] is None
    assert [c["id"] for c in rebuilt.chats.conversations(owner)] == [chat["id"]]


def test_the_same_seed_and_turn_give_the_same_reply(make_services):
    services = make_services()
    owner = account(services, "10.40.2.1")
    maren = character(services, owner)
    replies = [services.chats.send(owner, services.chats.open(owner, maren.id, seed=11)["id"], "Hi")["reply"] for _ in range(2)]
    assert replies[0] == replies[1]


def test_a_failed_generation_refunds_the_message_and_stores_nothing(make_services, monkeypatch):
    services = make_services()
    owner = account(services, "10.40.3.1")
    chat = services.chats.open(owner, character(services, owner).id)
    spy = GenerateSpy(services, monkeypatch)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(spy.pipe.model, "generate", broken)
    before = services.ledger.balance(owner.id)
    with pytest.raises(RuntimeError):
        services.chats.send(owner, chat["id"], "Hello?")
    assert services.ledger.balance(owner.id) == before
    assert len(services.chats.get(owner, chat["id"])["messages"]) == 1  # the greeting alone: no half-written turn
    failed = services.history.list(owner.id, include_failed=True)[0]
    assert failed.task == "chat" and failed.status == "failed"


def test_rename_clear_delete_and_choices(make_services):
    services = make_services()
    owner = account(services, "10.40.4.1")
    chat = services.chats.open(owner, character(services, owner).id, seed=1)
    services.chats.send(owner, chat["id"], "Hello")
    assert services.chats.rename(owner, chat["id"], "Storm night")["title"] == "Storm night"
    with pytest.raises(ChatError, match="1 to 120 characters"):
        services.chats.rename(owner, chat["id"], " ")
    chosen = services.chats.choose(owner, chat["id"], model="qwen3-32b", persona=1)
    assert chosen["model"]["id"] == "qwen3-32b" and chosen["persona"] == 1
    assert services.chats.quote(owner, chat["id"], "hi")["price"] == 2  # the 32B's price per message
    with pytest.raises(InvalidRequest, match="not a chat model"):
        services.chats.choose(owner, chat["id"], model="sdxl-base")
    with pytest.raises(ChatError, match="chats with Qwen3 4B Instruct, Qwen3 32B"):
        services.chats.choose(owner, chat["id"], model="llama-3.3-70b")
    cleared = services.chats.clear(owner, chat["id"])
    assert [m["role"] for m in cleared["messages"]] == ["assistant"] and cleared["turns"] == 0
    other = account(services, "10.40.4.2")
    with pytest.raises(ChatError, match="No conversation"):
        services.chats.get(other, chat["id"])  # a conversation is its visitor's alone
    services.chats.delete(owner, chat["id"])
    with pytest.raises(ChatError, match="No conversation"):
        services.chats.get(owner, chat["id"])
    assert services.chats.conversations(owner) == []


def test_a_long_conversation_is_bounded_by_the_window(make_services, monkeypatch):
    services = make_services()
    owner = account(services, "10.40.5.1")
    chat = services.chats.open(owner, character(services, owner).id, seed=2)
    spy = GenerateSpy(services, monkeypatch)
    entry = services.registry.get("qwen3-4b-instruct")
    window = 1400  # tokens (the tiny tokenizer: one per character); the reply's cap is 400
    monkeypatch.setattr(services.catalogue, "chat_window", lambda e: window)
    for n in range(6):
        out = services.chats.send(owner, chat["id"], f"Message number {n}: " + "the wind is howling tonight " * 4)
    assert out["left_out_turns"] > 0
    assert len(spy.input_ids[-1]) <= window - entry.chat.max_new_tokens
    assert SECRET in spy.prompts[-1] and "Message number 5" in spy.prompts[-1] and "Message number 0" not in spy.prompts[-1]
    with pytest.raises(InvalidRequest, match="too long for the model's window"):
        services.chats.send(owner, chat["id"], "x" * 1500)
    assert CHARACTER.fields["name"] == "Maren"
