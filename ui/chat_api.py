"""The chat API: open a conversation with a character, read and list them, quote and send a message, ask for a
picture, rename, clear, delete, pick the model and persona, and the owner's 18+ switch. The Chat tab (ui/chat.py)
calls the same functions, except that its replies stream token by token.

A conversation id is the visitor's own: every call needs the session token that opened it."""
from __future__ import annotations

from typing import Any

import gradio as gr

from services.container import Services

from .api import api, public, required
from .errors import user_errors
from .session import account_for

KEEP_PERSONA = -2  # /chat_choose: the persona stays as it is
NO_PERSONA = -1


def persona_of(persona: int) -> int | None:
    """An API persona index as the service takes it: -1 (or any negative) is no persona."""
    return None if persona is None or int(persona) < 0 else int(persona)


def register(services: Services) -> dict[str, Any]:
    """The chat endpoints, inside the app's Blocks; returns the functions for the tab."""
    chats = services.chats

    @user_errors
    def chat_open(token: str = "", character_id: str = "", model: str = "", persona: int = NO_PERSONA, seed: int = -1,
                  profile: gr.OAuthProfile | None = None) -> dict:
        """Start a conversation with a character you may open (your own, a verified public one, an unlisted one by its
        id). Its first message is the character's greeting; one of its opening messages is offered as yours (`opener`)
        until you send the first message. Opening is free; each reply is paid.

        Args:
            token: your session token from /session_start.
            character_id: the character's id (from /characters, /catalogue or its link).
            model: one of the character's chat models (`models` in the answer); "" takes its first.
            persona: the index of one of the character's persona cards (`personas`) to play; -1 plays none.
            seed: the conversation's seed (it picks the opener and seeds every reply); -1 draws one.
        """
        account = account_for(services, token, profile)
        required(character_id=character_id)
        return chats.open(account, character_id, model=model, persona=persona_of(persona), seed=None if seed < 0 else seed)

    @user_errors
    def chat_get(token: str = "", conversation_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """One of your conversations: its newest messages (assistant, user, notice, image with its file URL), the
        character, model (with `preview` true when replies come from the offline preview's noise model), the models it
        may use with their price per message, persona, the opener offered, challenge progress and the judge, and the
        prices of a message and of a picture.

        Args:
            token: your session token from /session_start.
            conversation_id: a conversation id from /chat_open or /chat_list.
        """
        account = account_for(services, token, profile)
        required(conversation_id=conversation_id)
        return chats.get(account, conversation_id)

    @user_errors
    def chat_list(token: str = "", character_id: str = "", profile: gr.OAuthProfile | None = None) -> list[dict]:
        """Your conversations, most recently active first: id, character, title, model and turns.

        Args:
            token: your session token from /session_start.
            character_id: only the conversations with this character ("" = all).
        """
        return chats.conversations(account_for(services, token, profile), character_id)

    @user_errors
    def chat_quote(token: str = "", conversation_id: str = "", message: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """What sending a message costs before you send it: `kind` reply (the model's price per message) or picture (a
        message asking for a picture is answered with one, at the picture price), with your balance.

        Args:
            token: your session token from /session_start.
            conversation_id: one of your conversations.
            message: the message you are about to send ("" prices a reply).
        """
        account = account_for(services, token, profile)
        required(conversation_id=conversation_id)
        quote = chats.quote(account, conversation_id, message)
        return dict(quote, balance=account.balance, unlimited=account.unlimited,
                    affordable=account.unlimited or account.balance >= quote["price"])

    @user_errors
    def chat_send(token: str = "", conversation_id: str = "", message: str = "", idempotency_key: str = "",
                  profile: gr.OAuthProfile | None = None) -> dict:
        """Send a message and get the character's reply (charged the price /chat_quote showed; a failed or stopped
        reply is refunded). A message asking for a picture gets one instead (`picture`, `scene`). A reply that would
        break the rules is withheld and refunded (`withheld` says why, `charged` 0). The answer is the conversation as
        /chat_get returns it, plus `reply`, `charged`, `preview`, `request_id` and `left_out_turns` (how many of the
        oldest turns did not fit the model's window).

        Args:
            token: your session token from /session_start.
            conversation_id: one of your conversations.
            message: your message (up to 4,000 characters).
            idempotency_key: send the same key again to get the first result without being charged twice.
        """
        account = account_for(services, token, profile)
        required(conversation_id=conversation_id)
        return chats.send(account, conversation_id, message, idempotency_key=idempotency_key or None)

    @user_errors
    def chat_picture(token: str = "", conversation_id: str = "", asked: str = "", idempotency_key: str = "",
                     profile: gr.OAuthProfile | None = None) -> dict:
        """A picture of the character now, from the conversation's context (the 📷 button), at the picture price
        (/chat_get's `price`). A figure-backed character keeps its face and style. Answers with the conversation,
        `picture` (its URL), `scene` and `charged`.

        Args:
            token: your session token from /session_start.
            conversation_id: one of your conversations.
            asked: what you would like to see ("" = the scene the conversation is in); it counts as your turn.
            idempotency_key: send the same key again to get the first result without being charged twice.
        """
        account = account_for(services, token, profile)
        required(conversation_id=conversation_id)
        return chats.picture(account, conversation_id, asked or "", idempotency_key=idempotency_key or None)

    @user_errors
    def chat_rename(token: str = "", conversation_id: str = "", title: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Rename one of your conversations.

        Args:
            token: your session token from /session_start.
            conversation_id: one of your conversations.
            title: its new name (1 to 120 characters).
        """
        account = account_for(services, token, profile)
        required(conversation_id=conversation_id)
        return chats.rename(account, conversation_id, title)

    @user_errors
    def chat_clear(token: str = "", conversation_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Start a conversation again: the greeting stays; every other message and all challenge progress go.

        Args:
            token: your session token from /session_start.
            conversation_id: one of your conversations.
        """
        account = account_for(services, token, profile)
        required(conversation_id=conversation_id)
        return chats.clear(account, conversation_id)

    @user_errors
    def chat_delete(token: str = "", conversation_id: str = "", confirm: bool = False, profile: gr.OAuthProfile | None = None) -> dict:
        """Delete one of your conversations and all its messages (`confirm=True`).

        Args:
            token: your session token from /session_start.
            conversation_id: one of your conversations.
            confirm: true to delete it for good.
        """
        account = account_for(services, token, profile)
        required(conversation_id=conversation_id)
        if not confirm:
            raise gr.Error("Deleting a conversation cannot be undone: confirm it (confirm=True).")
        return chats.delete(account, conversation_id)

    @user_errors
    def chat_choose(token: str = "", conversation_id: str = "", model: str = "", persona: int = KEEP_PERSONA,
                    profile: gr.OAuthProfile | None = None) -> dict:
        """Pick the chat model and the persona card for the next turns of one of your conversations.

        Args:
            token: your session token from /session_start.
            conversation_id: one of your conversations.
            model: one of the character's chat models (`models` in /chat_get); "" keeps the current one.
            persona: -2 keeps the current persona, -1 plays none, 0 or more: the index of a persona card (`personas`).
        """
        account = account_for(services, token, profile)
        required(conversation_id=conversation_id)
        chosen = -1 if persona == KEEP_PERSONA else persona_of(persona)
        return chats.choose(account, conversation_id, model=model or None, persona=chosen)

    @user_errors
    def chat_adult(token: str = "", character_id: str = "", enabled: bool = False, profile: gr.OAuthProfile | None = None) -> dict:
        """Your character's 18+ chat switch: when on, members who confirmed they are 18 or older (/confirm_age) chat with
        it under the 18+ rules; everyone else stays SFW. Only members who confirmed their age may turn it on.

        Args:
            token: your session token from /session_start.
            character_id: one of your characters.
            enabled: true allows 18+ chat with it, false stops it.
        """
        account = account_for(services, token, profile)
        required(character_id=character_id)
        return chats.set_adult(account, character_id, bool(enabled))

    functions = {f.__name__: f for f in (chat_open, chat_get, chat_list, chat_send, chat_quote, chat_picture, chat_rename,
                                         chat_clear, chat_delete, chat_choose, chat_adult)}
    for name, fn in functions.items():
        if name in ("chat_send", "chat_picture"):  # paid runs: queued with the tab's own events, one slot each
            public(services, fn, [gr.JSON(visible=False)], api_name=name)
        else:
            api(services, fn, api_name=name)
    return functions
