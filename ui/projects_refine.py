"""The refine chat on a card (Projects › Cards, beside the editor): before the first version it asks the clarifying
questions the prompt leaves open, each with clickable suggestions; after one it takes one change at a time. Each
answer shows its full prompt collapsed (click to expand); "New Version with this prompt" runs it (the draft is kept as
typed, the proposal as the refined prompt). The refiner says what it is: the free offline refiner, or a language model
at its price per answer."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gradio as gr

from services.container import Services
from services.projects.refiner import ASPECTS

from . import projects_view as view
from .errors import VisitorError, user_errors
from .session import account_for, bar_text
from .text import md


def build(services: Services) -> SimpleNamespace:
    """The panel's components (inside the card page's layout)."""
    r = SimpleNamespace()
    with gr.Accordion("Refine the prompt (chat)", open=True, elem_id="projects-refine"):
        r.info = gr.Markdown(elem_id="projects-refiner")
        r.chat = gr.Chatbot([], label="Refine chat", height=320, feedback_options=None, buttons=["copy"], group_consecutive_messages=False,
                            placeholder="Ask for details or one change at a time: each answer proposes the full prompt.",
                            elem_id="projects-refine-chat")
        with gr.Column(visible=False) as r.before:
            r.groups = {a: gr.CheckboxGroup([], label=a, visible=False, elem_id=f"projects-suggest-{a}") for a in ASPECTS}
            r.answer = gr.Textbox(label="Or your own answer (a short phrase)", max_lines=1, elem_id="projects-refine-answer")
            r.suggest = gr.Button("Work them into the prompt", size="sm", elem_id="projects-refine-suggest")
        with gr.Row(visible=False, equal_height=True) as r.after:
            r.change_text = gr.Textbox(label="One change (“closer”, “remove the hat”, “switch to profile angle”)", max_lines=1,
                                       scale=4, elem_id="projects-refine-change-text")
            r.change = gr.Button("Apply", size="sm", scale=1, elem_id="projects-refine-change")
        with gr.Row():
            r.run = gr.Button("New Version with this prompt", variant="primary", size="sm", visible=False, elem_id="projects-refine-new")
            r.use = gr.Button("Put it in the editor", size="sm", visible=False, elem_id="projects-refine-use")
            r.clear = gr.Button("Start the chat again", size="sm", elem_id="projects-refine-clear")
    r.proposal = gr.State("")

    def render(account, card_id: str, quote: dict[str, Any] | None) -> dict:
        state = services.projects.refine_state(account, card_id)
        open_ = {q["aspect"]: q for q in state["questions"]} if state["phase"] == "before" else {}
        writable = not state["read_only"]
        out = {r.info: view.refiner_md(state), r.chat: view.refine_turns(state), r.proposal: state["proposal"] or "",
               r.before: gr.Column(visible=state["phase"] == "before" and writable),
               r.after: gr.Row(visible=state["phase"] == "after" and writable),
               r.run: gr.Button(visible=bool(state["proposal"]) and writable,
                                value="New Version with this prompt" + (f" ({view.credits(quote['total'])})" if quote else "")),
               r.use: gr.Button(visible=bool(state["proposal"]) and writable)}
        for aspect, group in r.groups.items():
            q = open_.get(aspect)
            out[group] = gr.CheckboxGroup(choices=q["suggestions"] if q else [], value=[], visible=bool(q),
                                          label=f"{q['label']}: {q['question']}" if q else aspect)
        return out

    r.render = render
    r.outputs = [r.info, r.chat, r.proposal, r.before, r.after, r.run, r.use, *r.groups.values()]
    return r


def wire(ui: SimpleNamespace, generate, limits: dict[str, Any]) -> None:
    """The panel's events; `generate` is the card's New Version (ui/projects_versions.py)."""
    services, session, r = ui.services, ui.session, ui.refine
    projects = services.projects
    outputs = ui.outputs + [ui.status, session.bar]

    def answered(account, card_id: str, result: dict[str, Any], cleared: list) -> dict:
        line = f"Refine: {md(result['said'])}" + ("" if result["changed"] else " Nothing changed.")
        return {**ui.render(account, projects.card(account, card_id)), ui.status: line, session.bar: bar_text(account),
                **{c: "" for c in cleared}}

    @user_errors
    def on_suggest(card_id, answer, token, subject, setting, lighting, camera, style, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not card_id:
            raise VisitorError("Pick or create a card first.")
        picked = (subject, setting, lighting, camera, style)  # the groups in ASPECTS order
        chosen = [p for group in picked for p in (group or [])] + ([answer.strip()] if (answer or "").strip() else [])
        result = projects.refine_suggest(account, card_id, chosen)
        return answered(account_for(services, token, profile), card_id, result, [r.answer])

    r.suggest.click(on_suggest, [ui.card_id, r.answer, session.token, *r.groups.values()], outputs + [r.answer],
                    api_visibility="private", show_progress_on=[r.info], **limits)

    @user_errors
    def on_change(card_id, instruction, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not card_id:
            raise VisitorError("Pick or create a card first.")
        result = projects.refine_change(account, card_id, instruction or "")
        return answered(account_for(services, token, profile), card_id, result, [r.change_text])

    gr.on([r.change.click, r.change_text.submit], on_change, [ui.card_id, r.change_text, session.token], outputs + [r.change_text],
          api_visibility="private", show_progress_on=[r.info], **limits)

    @user_errors
    def on_clear(card_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        projects.refine_clear(account, card_id)
        return {**ui.render(account, projects.card(account, card_id)), ui.status: "The refine chat starts again."}

    r.clear.click(on_clear, [ui.card_id, session.token], ui.outputs + [ui.status], api_visibility="private")

    def on_use(proposal):
        if not proposal:
            raise VisitorError("The chat has no proposal yet.")
        return proposal, "The proposal is in the editor: it is saved as the draft when you edit it or press Save draft."

    r.use.click(on_use, [r.proposal], [ui.prompt, ui.draft_status], api_visibility="private").then(
        _save_after_use(ui), [ui.card_id, ui.prompt, ui.revision, session.token], [ui.revision, ui.draft_status],
        api_visibility="private")

    def run(card_id, typed, proposal, token, profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        if not proposal:
            raise VisitorError("The chat has no proposal yet: pick suggestions or ask for a change first.")
        yield from generate(card_id, typed, proposal, token, profile, progress)

    r.run.click(run, [ui.card_id, ui.prompt, r.proposal, session.token], outputs, api_visibility="private",
                show_progress_on=[ui.image], **limits)


def _save_after_use(ui: SimpleNamespace):
    """Putting the proposal in the editor saves it as the draft, as typing would."""
    services = ui.services

    def save(card_id, text, revision, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        try:
            card = services.projects.save_draft(account, card_id, text or "", int(revision))
        except Exception as exc:  # noqa: BLE001 - a stale revision: said in the status line, the text stays
            return revision, f"⚠️ **Not saved:** {md(exc)}"
        return card["revision"], f"Saved the proposal as the draft (revision {card['revision']})."

    return save
