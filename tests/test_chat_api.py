"""The chat endpoints as a script calls them through gradio_client against the running app (offline preview): open a
conversation with one's own character (the greeting first, the opener offered), a message charged exactly its quote,
challenge progress, rename / clear / delete, and mistakes answered in the visitor's words with nothing charged."""
from __future__ import annotations

import re

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from tests.chat_helpers import SKIMAGE

OPENER = "Storm's coming. Help me with the shutters?"
GOAL = "Make Maren laugh about the storm | she tells you where the old shipwreck lies | joke about the storm or the soggy bread"


def create_maren(client, token: str) -> dict:
    return client.predict(token=token, name="Maren", intro="A lighthouse keeper with stories.", tags=["mystery"],
                          visibility="private", greeting="Welcome to the lighthouse, {{user}}. I'm {{char}}.",
                          avatar_source="upload", avatar=handle_file(str(SKIMAGE / "astronaut.png")),
                          opening_messages=[OPENER], persona_cards=["Ines: I keep bees on a rooftop in Lisbon"],
                          challenge_modes=[GOAL], api_name="/character_create")


def balance(client, token: str) -> int:
    return client.predict(token=token, api_name="/balance")["balance"]


@pytest.fixture
def maren_chat(client, token):
    maren = create_maren(client, token)
    return maren, client.predict(token=token, character_id=maren["id"], api_name="/chat_open")


def test_a_conversation_starts_with_the_greeting_and_a_message_costs_its_quote(client, token, maren_chat):
    maren, chat = maren_chat
    assert [(m["role"], m["content"]) for m in chat["messages"]] == [("assistant", "Welcome to the lighthouse, you. I'm Maren.")]
    assert chat["opener"] == OPENER and chat["turns"] == 0 and chat["persona"] is None and chat["personas"] == ["Ines"]
    assert chat["model"]["preview"] is True  # the offline preview: the tab says replies are noise
    assert [(c["goal"], c["progress"], c["unlocked"]) for c in chat["challenges"]] == [("Make Maren laugh about the storm", 0, False)]
    assert "rules" in chat["judge"]
    listing = client.predict(token=token, api_name="/chat_list")
    assert [(c["id"], c["character_id"], c["title"], c["turns"]) for c in listing] == [(chat["id"], maren["id"], "Chat with Maren", 0)]

    message = "Tell me a joke about the storm, keeper"
    quote = client.predict(token=token, conversation_id=chat["id"], message=message, api_name="/chat_quote")
    assert quote["kind"] == "reply" and quote["price"] == chat["price"]["message"] > 0 and quote["affordable"] is True
    asked = client.predict(token=token, conversation_id=chat["id"], message="send me a picture of you at the beach",
                           api_name="/chat_quote")
    assert asked["kind"] == "picture" and asked["price"] == chat["price"]["picture"]

    before = balance(client, token)
    turn = client.predict(token=token, conversation_id=chat["id"], message=message, api_name="/chat_send")
    assert turn["charged"] == quote["price"] and balance(client, token) == before - quote["price"]
    assert isinstance(turn["reply"], str) and turn["preview"] is True and turn["request_id"] and turn["left_out_turns"] == 0
    assert [m["role"] for m in turn["messages"]] == ["assistant", "user", "assistant"]
    assert turn["messages"][1]["content"] == message and turn["messages"][2]["content"] == turn["reply"]
    assert turn["opener"] is None and turn["turns"] == 1
    assert turn["challenges"][0]["progress"] == 25  # "joke" and "storm" are words of the goal and hint
    assert client.predict(token=token, conversation_id=chat["id"], api_name="/chat_get")["messages"] == turn["messages"]

    chosen = client.predict(token=token, conversation_id=chat["id"], persona=0, api_name="/chat_choose")
    assert chosen["persona"] == 0
    assert client.predict(token=token, conversation_id=chat["id"], api_name="/chat_choose")["persona"] == 0  # -2 keeps it
    assert client.predict(token=token, conversation_id=chat["id"], persona=-1, api_name="/chat_choose")["persona"] is None

    renamed = client.predict(token=token, conversation_id=chat["id"], title="Storm night", api_name="/chat_rename")
    assert renamed["title"] == "Storm night"
    cleared = client.predict(token=token, conversation_id=chat["id"], api_name="/chat_clear")
    assert [m["role"] for m in cleared["messages"]] == ["assistant"] and cleared["challenges"][0]["progress"] == 0
    assert client.predict(token=token, conversation_id=chat["id"], confirm=True, api_name="/chat_delete") == {"deleted": chat["id"]}
    assert client.predict(token=token, api_name="/chat_list") == []
    with pytest.raises(AppError, match=re.escape(f"No conversation {chat['id']!r} among yours.")):
        client.predict(token=token, conversation_id=chat["id"], api_name="/chat_get")


def test_mistakes_are_said_in_the_visitors_words_and_charge_nothing(client, token, maren_chat):
    maren, chat = maren_chat
    before = balance(client, token)
    with pytest.raises(AppError, match=re.escape("No conversation 'no-such-chat' among yours.")):
        client.predict(token=token, conversation_id="no-such-chat", message="Hello?", api_name="/chat_send")
    with pytest.raises(AppError, match="Write a message first."):
        client.predict(token=token, conversation_id=chat["id"], message="   ", api_name="/chat_send")
    with pytest.raises(AppError, match="No character 'nobody' that you can open"):
        client.predict(token=token, character_id="nobody", api_name="/chat_open")
    with pytest.raises(AppError, match="persona card"):
        client.predict(token=token, conversation_id=chat["id"], persona=4, api_name="/chat_choose")
    with pytest.raises(AppError, match="confirm it"):
        client.predict(token=token, conversation_id=chat["id"], api_name="/chat_delete")
    with pytest.raises(AppError, match="1 to 120 characters"):
        client.predict(token=token, conversation_id=chat["id"], title=" ", api_name="/chat_rename")
    other = client.predict(api_name="/session_start")["token"]
    with pytest.raises(AppError, match="No conversation"):  # a conversation is its visitor's alone
        client.predict(token=other, conversation_id=chat["id"], message="Hello?", api_name="/chat_send")
    assert balance(client, token) == before
    kept = client.predict(token=token, conversation_id=chat["id"], api_name="/chat_get")
    assert [m["role"] for m in kept["messages"]] == ["assistant"] and kept["turns"] == 0
