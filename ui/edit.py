"""Images > Edit: describe a change to one of your images; SFW only; the result links to its source."""
from __future__ import annotations

import gradio as gr

from services.catalogue import Task
from services.container import Services

from .models import model_choices
from .api import bounds, public, ui_event
from .errors import clicked, user_errors
from .figures_common import seed_or_random
from .figures_identity import chain_text
from .remix import result
from .text import md
from .session import SessionUI, account_for, optional_account, stop_button, wire_stop


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab) -> None:
    models = model_choices(services, services.catalogue.entries(Task.EDIT, local=True), Task.EDIT)
    with gr.Row():
        with gr.Column(scale=3):
            sources = gr.Gallery(fit_columns=False, label="Your images — click the one to edit", columns=5, height=240, format="png",
                                 type="filepath", allow_preview=False, elem_id="edit-sources")
            rows = gr.State([])
            chosen = gr.Markdown("No image selected.", elem_id="edit-chosen")
            request_id = gr.Textbox(visible=False)
            index = gr.Number(visible=False, precision=0)
            instruction = gr.Textbox(label="What should change?", lines=2, max_length=services.policy.limit("natural"), elem_id="edit-instruction",
                                     value="same setting, change the jacket to a red one")
            model = gr.Dropdown(models, value=models[0][1], label="Edit model", elem_id="edit-model")
            seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", **bounds("seed"))
            keep_style = gr.Checkbox(value=True, label="Keep the figure's style (images of a figure; untick to override)", elem_id="edit-keep-style")
            reanchor = gr.Checkbox(value=False, label="Re-anchor: edit the figure's canonical image instead (an edit of an edit "
                                   "drifts from the face; this starts again from it)", elem_id="edit-reanchor")
            with gr.Row():
                go = gr.Button("Edit", variant="primary", elem_id="edit-generate")
                stop = stop_button("edit-stop")
        with gr.Column(scale=3):
            notice = gr.Markdown("", elem_id="edit-notice")
            gallery = gr.Gallery(fit_columns=False, label="Edited version", columns=1, height=420, format="png", type="filepath", elem_id="edit-gallery")
            info = gr.JSON(label="Settings used")

    @user_errors
    def list_sources(token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        images = services.history.images(account.id) if account else []
        return ([(str(i.path), i.caption) for i in images],
                [{"request_id": i.request_id, "index": i.index, "caption": i.caption} for i in images])

    gr.on([tab.select], list_sources, [session.token], [sources, rows], api_visibility="private")

    def pick(found: list[dict], evt: gr.SelectData):
        row = clicked(found, evt)
        return row["request_id"], row["index"], f"Editing: {md(row.get('caption', 'the picked image'))}."

    sources.select(pick, [rows], [request_id, index, chosen], api_visibility="private")

    @user_errors
    def edit_image(request_id: str, index: int = 0, instruction: str = "", model: str = "", seed: int = -1, token: str = "",
                   idempotency_key: str = "", keep_style: bool = True, reanchor: bool = False,
                   profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        """Edit one of your images as the instruction says (SFW only); the new image links to its source. Returns
        the PNG, JSON with settings, a notice, and the balance line.

        Args:
            request_id: one of your generations (see /history).
            index: which of its images, from 0.
            instruction: what should change.
            model: an edit-capable model id from /models; "" takes the first one.
            seed: -1 for random.
            token: your session token from /session_start.
            idempotency_key: send the same key again to get the first result without being charged twice.
            keep_style: true (default) applies, for an image of one of your figures, that figure's style register (its prompt fragments and negative prompt);
                false overrides it. The output's metadata records which.
            reanchor: true edits the canonical image of the picked image's figure instead of the picked image itself
                (an edit of an edit drifts from the face; this starts again from it); refused for an image of no figure.
                Default false. Every edit of a figure's image records its SimRef; /identity_chain shows the chain.
        """
        account = account_for(services, token, profile)
        if not request_id:
            raise gr.Error("Pick an image first: click one of your images above (through the API: pass request_id, one of "
                           "your generations from /history).")
        progress(0, desc="Loading model")
        output = services.remix.edit_image(
            account, request_id=request_id, index=int(index or 0), instruction=instruction, model=model or models[0][1],
            seed=seed_or_random(seed), idempotency_key=idempotency_key or None, keep_style=bool(keep_style),
            reanchor=bool(reanchor), on_step=lambda done, total: progress((done, total), desc="Editing", unit="steps"),
        )
        files, info, notice, bar = result(services, output, token, profile)
        if output.parameters.get("sim_ref"):  # an image of a figure: its drift along the chain of edits
            notice += "  \n" + chain_text(services.monitor.chain(account, output.request_id))
        return files, info, notice, bar

    wire_stop(services, session, stop, notice)
    outputs = [gallery, info, notice, session.bar]
    ui_event(services, go.click, edit_image, {"request_id": request_id, "index": index, "instruction": instruction, "model": model, "seed": seed,
                                    "token": session.token, "keep_style": keep_style, "reanchor": reanchor}, outputs,
             api_name="edit_image")
    public(services, edit_image, outputs, api_name="edit_image")
