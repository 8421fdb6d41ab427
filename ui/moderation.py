"""Moderation (QA sessions): the pending public characters, each shown with EVERYTHING it publishes (every profile
field, greeting, persona card and challenge mode, the main image, the card export's kept fields), and a verdict
that names the revision shown, so a change made after the moderator opened it is never verified unseen."""
from __future__ import annotations

import json
from typing import Any

import gradio as gr

from services.container import Services
from services.creation.characters.profile import challenge_text, persona_text

from .errors import user_errors
from .session import SessionUI, optional_account
from .text import md

FIELD_LABELS = {
    "name": "Name", "description": "Description", "personality": "Personality", "scenario": "Scenario",
    "first_mes": "Greeting", "mes_example": "Example messages", "system_prompt": "System prompt",
    "post_history_instructions": "Post-history instructions", "creator_notes": "Creator notes", "creator": "Creator",
}
SHOWN_ELSEWHERE = set(FIELD_LABELS) | {"alternate_greetings", "tags", "extensions", "assets", "creation_date",
                                       "modification_date", "character_version"}


def _block(title: str, text: Any) -> str:
    if text in (None, "", [], {}):
        return f"**{title}:** (empty)"
    if not isinstance(text, str):
        text = json.dumps(text, ensure_ascii=False, indent=1)
    return f"**{title}:**\n\n" + "\n".join(f"> {md(line)}" if line.strip() else ">" for line in text.splitlines())


def review_text(view: dict) -> str:
    """Every published field of a character as a moderator reads it (markdown)."""
    character, card = view["character"], view["card"]
    profile = character["profile"]
    lines = [f"### {md(character['name'])} (revision {view['revision']})", _block("Intro", profile["intro"]),
             "**Tags:** " + ", ".join(md(t) for t in profile["tags"])]
    lines += [_block(label, profile["fields"].get(key, "")) for key, label in FIELD_LABELS.items()]
    for n, greeting in enumerate(profile.get("alternate_greetings", []), 1):
        lines.append(_block(f"Alternate greeting {n}", greeting))
    for n, persona in enumerate(profile.get("persona_cards", []), 1):
        lines.append(_block(f"Persona card {n}", persona_text(persona) if persona.get("name") else persona))
    for n, challenge in enumerate(profile.get("challenge_modes", []), 1):
        lines.append(_block(f"Challenge mode {n} (goal | unlocked behaviour | hint)",
                            challenge_text(challenge) if challenge.get("goal") else challenge))
    if profile.get("chat_models"):
        lines.append("**Chat models:** " + ", ".join(md(m) for m in profile["chat_models"]))
    kept = {k: v for k, v in card.items() if k not in SHOWN_ELSEWHERE and v not in (None, "", [], {})}
    for key, value in kept.items():
        lines.append(_block(f"Card field {key}", value))
    if card.get("extensions"):
        lines.append(_block("Card extensions (other tools)", card["extensions"]))
    lines.append(f"Main image check: {character['image_check']}.")
    return "\n\n".join(lines)


def build_moderation(services: Services, session: SessionUI, functions, tab: gr.Tab) -> None:
    gate = gr.Markdown("QA sessions only: open the app with the admin key to moderate.", elem_id="moderation-gate")
    with gr.Row():
        queue = gr.Dropdown([], label="Pending public characters", allow_custom_value=True, scale=3, elem_id="moderation-queue")
        refresh = gr.Button("Refresh", scale=0, min_width=90, elem_id="moderation-refresh")
    with gr.Row():
        image = gr.Image(label="Main image", interactive=False, height=220, elem_id="moderation-image")
        detail = gr.Markdown(elem_id="moderation-detail")
    revision = gr.State(-1)  # the revision shown: the verdict names it
    note = gr.Textbox(label="Reason (required to reject; the owner sees it)", max_length=500, elem_id="moderation-note")
    with gr.Row():
        verify = gr.Button("Verify: list it in the catalogue", variant="primary", size="sm", elem_id="moderation-verify")
        reject = gr.Button("Reject", variant="stop", size="sm", elem_id="moderation-reject")
    result = gr.Markdown(elem_id="moderation-result")

    def load(token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        if account is None or not account.can("review"):
            return gr.update(visible=True), gr.Dropdown(choices=[], value=None)
        pending = functions.review_characters(token=token, profile=profile)
        return (gr.update(value=f"{len(pending)} character(s) waiting.", visible=True),
                gr.Dropdown(choices=[(c["name"], c["id"]) for c in pending], value=None))

    gr.on([tab.select, refresh.click], load, [session.token], [gate, queue], api_visibility="private")

    def shown_to(token, profile: gr.OAuthProfile | None = None):
        """The tab (and its Verify / Reject) exists only for QA sessions; the bar changes with every session."""
        account = optional_account(services, token, profile)
        return gr.Tab(visible=account is not None and account.can("review"))

    session.bar.change(shown_to, [session.token], [tab], api_visibility="private")

    @user_errors
    def show(character_id, token, profile: gr.OAuthProfile | None = None):
        if not character_id:
            return None, "", -1
        view = functions.review_character_view(token=token, character_id=character_id, profile=profile)
        return view["character"]["image"], review_text(view), view["revision"]

    queue.input(show, [queue, session.token], [image, detail, revision], api_visibility="private")

    keep = [gr.update()] * 6  # a refused verdict keeps the panel as it was: the message says what to do

    def decide(approve: bool):
        def handler(character_id, shown, reason, token, profile: gr.OAuthProfile | None = None):
            if not character_id:
                return ("**Pick a pending character first.**", *keep)
            try:
                done = functions.review_character(token=token, character_id=character_id, verify=approve, note=reason or "",
                                                  revision=shown, profile=profile)
            except gr.Error as exc:  # the app's own message (a stale revision, a missing reason)
                return (f"**Not done:** {md(exc.message)}", *keep)
            gate_update, queue_update = load(token, profile)
            word = "Verified: it is in the catalogue." if approve else "Rejected; the owner sees the reason."
            return f"**{md(done['name'])}**: {word}", gate_update, queue_update, None, "", "", -1
        return handler

    outputs = [result, gate, queue, image, detail, note, revision]
    verify.click(decide(True), [queue, revision, note, session.token], outputs, api_visibility="private")
    reject.click(decide(False), [queue, revision, note, session.token], outputs, api_visibility="private")
