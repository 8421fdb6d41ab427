"""Chat tab: talk with one of your characters or a catalogue character. Pick the character and a conversation (or
start a new one: the greeting comes first, an opener waits in the message box), a persona card and a chat model with
its price per message; see the next message's price as you type, the balance after each turn, one progress bar per
challenge; replies stream token by token; 📷 asks for a picture; Stop ends a reply (refunded). The endpoints are in
ui/chat_api.py; how a conversation is drawn is in ui/chat_view.py."""
from __future__ import annotations

import queue
import threading
import time
from typing import Any

import gradio as gr

from services.chat.prompt import checked_message
from services.container import Services

from . import chat_view as view
from .chat_api import register
from .errors import user_errors
from .session import SessionUI, account_for, bar_text, optional_account, stop_button, wire_stop

STREAM_EVERY = 0.08  # seconds between chatbot updates while a reply streams (each update resends the turns)


@user_errors
def _visitor(exc: BaseException):
    """Raise `exc` as every endpoint does: a UserError in the visitor's words, anything else reported plainly."""
    raise exc


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab, chat_with: gr.State, main_tabs: gr.Tabs) -> None:
    register(services)
    chats = services.chats
    gr.Markdown("Talk with your characters, and with verified public ones (open one in Characters › Catalogue and press "
                "**💬 Chat**). Each reply costs its model's price per message (the model picker shows it; every price is in "
                "Credits); a picture costs what the 📷 button says. Replies stream as they are written; Stop ends one and "
                "refunds it.", elem_id="chat-intro")
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            character = gr.Dropdown([], value=None, label="Character", elem_id="chat-character",
                                    info="Yours, and those you chat with; others open from Characters › Catalogue")
            conversation = gr.Dropdown([], value=None, label="Conversation", elem_id="chat-conversation")
            new = gr.Button("New conversation", size="sm", elem_id="chat-new")
            persona = gr.Dropdown([("No persona (you are yourself)", view.NO_PERSONA)], value=view.NO_PERSONA,
                                  label="Your persona (the character's persona cards)", elem_id="chat-persona")
            model = gr.Dropdown([], value=None, label="Chat model (price per message)", elem_id="chat-model")
            preview = gr.Markdown(elem_id="chat-preview")
            challenges = gr.HTML(elem_id="chat-challenges")
            with gr.Accordion("Rename, clear or delete this conversation", open=False):
                title = gr.Textbox(label="Name", max_length=120, elem_id="chat-title")
                with gr.Row():
                    rename = gr.Button("Rename", size="sm", elem_id="chat-rename")
                    clear = gr.Button("Clear (keeps the greeting)", size="sm", elem_id="chat-clear")
                confirm = gr.Checkbox(False, label="Yes, delete this conversation", elem_id="chat-confirm")
                delete = gr.Button("Delete", variant="stop", size="sm", elem_id="chat-delete")
        with gr.Column(scale=5):
            chatbot = gr.Chatbot([], label="Chat", height=520, feedback_options=None, buttons=["copy"], group_consecutive_messages=False,
                                 placeholder="Pick a character to start a chat: its greeting comes first.", elem_id="chat-messages")
            message = gr.Textbox(label="Your message", lines=2, max_lines=8, placeholder="Write to the character (Enter sends; "
                                 "“send me a picture …” asks for one)", elem_id="chat-message")
            price = gr.Markdown(elem_id="chat-price")
            with gr.Row():
                send = gr.Button("Send", variant="primary", elem_id="chat-send")
                picture = gr.Button("📷 Picture", elem_id="chat-picture")
                stop = stop_button("chat-stop")
            status = gr.Markdown(elem_id="chat-status")
    shown = gr.State(None)  # the conversation on screen, without its messages (for the price line as you type)

    def path_of(name: str) -> str:
        return str(services.store.path(name))

    def character_choices(account, extra: tuple[str, str] | None = None) -> list[tuple[str, str]]:
        """Your characters, then the others you chat with (those you may still open), then `extra`."""
        choices = [(f"{c.name} (yours)", c.id) for c in services.characters.list(account)]
        known = {cid for _, cid in choices}
        for c in chats.conversations(account):
            if c["character_id"] not in known:
                known.add(c["character_id"])
                try:
                    choices.append((services.characters.get(account, c["character_id"]).name, c["character_id"]))
                except Exception:  # noqa: BLE001 - no longer one they may open: not offered
                    continue
        if extra and extra[1] not in known:
            choices.append(extra)
        return choices

    view_outputs = [conversation, persona, model, preview, challenges, chatbot, price, picture, title, message, shown]

    def render(account, state: dict[str, Any], typed: str = "", reset_message: bool = False) -> tuple:
        """Every panel for one conversation; `reset_message` puts its opener (or nothing) in the message box."""
        if reset_message:
            typed = state["opener"] or ""
        quote = chats.quote(account, state["id"], typed)
        listing = chats.conversations(account, state["character"]["id"])
        kept = {k: v for k, v in state.items() if k != "messages"}
        return (gr.Dropdown(choices=view.conversation_choices(listing), value=state["id"]),
                gr.Dropdown(choices=view.persona_choices(state), value=view.NO_PERSONA if state["persona"] is None else state["persona"],
                            interactive=bool(state["personas"])),
                gr.Dropdown(choices=view.model_choices(state), value=state["model"]["id"]),
                view.preview_note(state), view.challenges_html(state),
                gr.Chatbot(value=view.turns(state, path_of), label=f"Chat with {state['character']['name']}",
                           avatar_images=(None, state["character"]["image"])),
                view.price_line(state, quote, account.balance_text()), gr.Button(value=view.picture_label(state)), state["title"],
                typed if reset_message else gr.skip(), kept)

    def empty() -> tuple:
        return (gr.Dropdown(choices=[], value=None), gr.Dropdown(choices=[("No persona (you are yourself)", view.NO_PERSONA)],
                value=view.NO_PERSONA), gr.Dropdown(choices=[], value=None), "", "", gr.Chatbot(value=[], label="Chat"), "",
                gr.Button(value=view.picture_label(None)), "", "", None)

    def newest_or_new(account, character_id: str) -> dict[str, Any]:
        listing = chats.conversations(account, character_id)
        return chats.get(account, listing[0]["id"]) if listing else chats.open(account, character_id)

    def on_tab(current, token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        if account is None:
            return gr.skip()
        choices = character_choices(account)
        return gr.Dropdown(choices=choices, value=current if current in [cid for _, cid in choices] else None)

    tab.select(on_tab, [character, session.token], [character], api_visibility="private")

    @user_errors
    def on_character(character_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not character_id:
            return empty()
        return render(account, newest_or_new(account, character_id), reset_message=True)

    character.input(on_character, [character, session.token], view_outputs, api_visibility="private")

    @user_errors
    def on_chat_with(target, token, profile: gr.OAuthProfile | None = None):
        """Another tab's Chat button: this tab, that character, its newest conversation (a new one if none)."""
        if not target:
            return tuple(gr.skip() for _ in range(len(view_outputs) + 2))
        account = account_for(services, token, profile)
        state = newest_or_new(account, target["id"])
        pair = (state["character"]["name"], state["character"]["id"])
        return (gr.Tabs(selected="chat"), gr.Dropdown(choices=character_choices(account, pair), value=pair[1]),
                *render(account, state, reset_message=True))

    chat_with.change(on_chat_with, [chat_with, session.token], [main_tabs, character, *view_outputs], api_visibility="private")

    @user_errors
    def on_conversation(conversation_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        return render(account, chats.get(account, conversation_id), reset_message=True) if conversation_id else empty()

    conversation.input(on_conversation, [conversation, session.token], view_outputs, api_visibility="private")

    @user_errors
    def on_trash(conversation_id, token, profile: gr.OAuthProfile | None = None):
        """The chatbot's own trash button only empties the display: the stored conversation comes back, kept."""
        panels = on_conversation(conversation_id, token, profile)
        return (*panels[:-2], gr.skip(), panels[-1],
                "The conversation is kept. To start it again, use Clear under “Rename, clear or delete this conversation”.")

    chatbot.clear(on_trash, [conversation, session.token], view_outputs + [status], api_visibility="private")

    @user_errors
    def on_new(character_id, chosen_model, chosen_persona, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not character_id:
            raise gr.Error("Pick a character first.")
        persona_index = None if chosen_persona is None or chosen_persona < 0 else chosen_persona
        return (*render(account, chats.open(account, character_id, model=chosen_model or "", persona=persona_index), reset_message=True),
                "A new conversation: the greeting comes first.")

    new.click(on_new, [character, model, persona, session.token], view_outputs + [status], api_visibility="private")

    def choosing(field: str):
        """The persona or model picker: the conversation's next turns use the new choice."""

        @user_errors
        def on_choose(conversation_id, value, typed, token, profile: gr.OAuthProfile | None = None):
            account = account_for(services, token, profile)
            if not conversation_id:
                raise gr.Error("Pick a character first: a conversation starts with its greeting.")
            if field == "persona":
                state = chats.choose(account, conversation_id, persona=None if value is None or value < 0 else value)
            else:
                state = chats.choose(account, conversation_id, model=value)
            return render(account, state, typed or "")
        return on_choose

    persona.input(choosing("persona"), [conversation, persona, message, session.token], view_outputs, api_visibility="private")
    model.input(choosing("model"), [conversation, model, message, session.token], view_outputs, api_visibility="private")

    def on_typed(conversation_id, typed, state, token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        if account is None or not conversation_id or not state:
            return gr.skip()
        return view.price_line(state, chats.quote(account, conversation_id, typed or ""), account.balance_text())

    message.change(on_typed, [conversation, message, shown, session.token], [price], api_visibility="private",
                   show_progress="hidden", trigger_mode="always_last")

    def on_send(conversation_id, typed, token, profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        """A turn, streamed: the reply grows in the chat as the model writes it (the service runs in a worker thread
        and hands each piece over a queue); the panels are redrawn from the stored conversation once it is done."""
        account = account_for(services, token, profile)
        if not conversation_id:
            raise gr.Error("Pick a character first: a conversation starts with its greeting.")
        try:
            text = checked_message(typed)
        except Exception as exc:  # noqa: BLE001 - said in the visitor's words
            _visitor(exc)
        slots = len(view_outputs) + 2

        def partial(**values) -> tuple:
            out = [gr.skip()] * slots
            for name, value in values.items():
                out[{"chat": 5, "message": 9, "status": slots - 2}[name]] = value
            return tuple(out)

        picture_asked = chats.quote(account, conversation_id, text)["kind"] == "picture"
        pending = [*view.turns(chats.get(account, conversation_id), path_of), {"role": "user", "content": view.chat_text(text)},
                   {"role": "assistant", "content": "📷 …" if picture_asked else "…"}]
        yield partial(chat=pending, message="", status="Making the picture…" if picture_asked else "Writing the reply…")
        events: queue.Queue = queue.Queue()
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["out"] = chats.send(account, conversation_id, text, on_text=lambda piece: events.put(("text", piece)),
                                           on_step=lambda done, total: events.put(("step", (done, total))))
            except BaseException as exc:  # noqa: BLE001 - handed to the event, which says it in the visitor's words
                result["error"] = exc
            finally:
                events.put(("end", None))

        threading.Thread(target=work, name="chat-reply", daemon=True).start()
        reply, last = "", 0.0
        while True:
            kind, value = events.get()
            if kind == "end":
                break
            if kind == "step":
                progress(value, desc="Making the picture" if picture_asked else "Writing the reply",
                         unit="steps" if picture_asked else "tokens")
                continue
            reply += value
            if time.monotonic() - last >= STREAM_EVERY:
                pending[-1] = {"role": "assistant", "content": view.chat_text(reply)}
                yield partial(chat=pending)
                last = time.monotonic()
        if "error" in result:  # the turn was not stored: the chat as it is, the message back in the box
            yield partial(chat=view.turns(chats.get(account, conversation_id), path_of), message=typed, status="")
            _visitor(result["error"])
        out = result["out"]
        account = account_for(services, token, profile)
        yield (*render(account, out, ""), view.after_run(out, account.balance_text()), bar_text(account))

    gr.on([send.click, message.submit], on_send, [conversation, message, session.token], view_outputs + [status, session.bar],
          api_visibility="private", show_progress_on=[status], concurrency_limit=services.settings.event_concurrency,
          concurrency_id="chat_send")

    @user_errors
    def on_picture(conversation_id, typed, token, profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        account = account_for(services, token, profile)
        if not conversation_id:
            raise gr.Error("Pick a character first: a conversation starts with its greeting.")
        progress(0, desc="Making the picture")
        out = chats.picture(account, conversation_id, "",
                            on_step=lambda done, total: progress((done, total), desc="Making the picture", unit="steps"))
        account = account_for(services, token, profile)
        return (*render(account, out, typed or ""), view.after_run(out, account.balance_text()), bar_text(account))

    picture.click(on_picture, [conversation, message, session.token], view_outputs + [status, session.bar], api_visibility="private",
                  show_progress_on=[status], concurrency_limit=services.settings.event_concurrency, concurrency_id="chat_picture")
    wire_stop(services, session, stop, status)

    @user_errors
    def on_rename(conversation_id, new_title, typed, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not conversation_id:
            raise gr.Error("Pick a conversation first.")
        return (*render(account, chats.rename(account, conversation_id, new_title or ""), typed or ""), "Renamed.")

    rename.click(on_rename, [conversation, title, message, session.token], view_outputs + [status], api_visibility="private")

    @user_errors
    def on_clear(conversation_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not conversation_id:
            raise gr.Error("Pick a conversation first.")
        return (*render(account, chats.clear(account, conversation_id), reset_message=True),
                "Cleared: the greeting stays, the other messages and challenge progress are gone.")

    clear.click(on_clear, [conversation, session.token], view_outputs + [status], api_visibility="private")

    @user_errors
    def on_delete(conversation_id, sure, character_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not conversation_id:
            raise gr.Error("Pick a conversation first.")
        if not sure:
            raise gr.Error("Tick “Yes, delete this conversation” first: deleting cannot be undone.")
        chats.delete(account, conversation_id)
        listing = chats.conversations(account, character_id) if character_id else []
        panels = render(account, chats.get(account, listing[0]["id"]), reset_message=True) if listing else empty()
        return (*panels, False, "Deleted." + ("" if listing else " Press New conversation to start again."))

    delete.click(on_delete, [conversation, confirm, character, session.token], view_outputs + [confirm, status],
                 api_visibility="private")
