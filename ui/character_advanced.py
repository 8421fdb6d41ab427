"""A character's Advanced setting: its creator lets other visitors make Advanced and Group images of it (the
/character_advanced endpoint, registered with the other characters endpoints, and its switch in My characters)."""
from __future__ import annotations

import gradio as gr

from services.container import Services

from .api import required
from .errors import user_errors
from .session import SessionUI, account_for
from .text import md

ON = ("Others can make Advanced and Group images of **{name}** (priced as Advanced, paid by them; they never see its "
      "figure). Untick and apply to stop it at once.")
OFF = ("Only you make Advanced images of **{name}**'s figure. Tick and apply to let others who can open it (public once "
       "verified, or unlisted by its link) use it in Advanced and Group; its figure needs a picked reference sheet.")


def advanced_endpoints(services: Services) -> dict:
    characters = services.characters

    @user_errors
    def character_advanced(token: str = "", character_id: str = "", enabled: bool = False,
                           profile: gr.OAuthProfile | None = None) -> dict:
        """Let other visitors make Advanced and Group images of one of your characters (enabled=true), or stop it
        (enabled=false, at once). Enabling needs a character built on a figure whose reference sheet is picked; they
        pay as for Advanced, and never see the figure. It changes nothing the character publishes (no new review).

        Args:
            token: your session token from /session_start.
            character_id: one of your characters.
            enabled: true lets others use it in Advanced and Group; false stops it.
        """
        required(character_id=character_id)
        return characters.set_advanced(account_for(services, token, profile), character_id, bool(enabled)).as_dict()

    return {"character_advanced": character_advanced}


def note(character) -> str:
    if character is None:
        return "Save the character first."
    return (ON if character.advanced else OFF).format(name=md(character.name))


def build(services: Services, session: SessionUI, functions, form) -> None:
    """The switch in My characters' right column, showing the picked character's setting."""
    with form.media_slot:
        with gr.Accordion("Advanced for other visitors (characters built on a figure)", open=False):
            enabled = gr.Checkbox(label="Let others make Advanced and Group images of this character", value=False,
                                  elem_id="character-advanced")
            with gr.Row():
                apply = gr.Button("Apply", size="sm", scale=0, min_width=100, elem_id="character-advanced-apply")
                status = gr.Markdown(elem_id="character-advanced-note")

    def on_pick(character_id, token, profile: gr.OAuthProfile | None = None):
        if not character_id:
            return False, ""
        try:
            character = services.characters.mine(account_for(services, token, profile), character_id)
        except Exception:  # noqa: BLE001 - no session, or no longer one of the session's characters: nothing to show
            return False, ""
        return character.advanced, note(character)

    form.pick.change(on_pick, [form.pick, session.token], [enabled, status], api_visibility="private")

    @user_errors
    def on_apply(character_id, value, token, profile: gr.OAuthProfile | None = None):
        if not character_id:
            raise gr.Error("Save the character first.")
        functions.character_advanced(token=token, character_id=character_id, enabled=bool(value), profile=profile)
        character = services.characters.mine(account_for(services, token, profile), character_id)
        return character.advanced, note(character)

    apply.click(on_apply, [form.pick, enabled, session.token], [enabled, status], api_visibility="private")
