"""Pieces the figure tabs share: the model picker, the takes gallery with its canonical pick, and Save."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from services.catalogue import Task
from services.container import Services
from services.creation.figures import MAX_NAME

from .models import model_choices
from .errors import user_errors
from .text import md
from .session import SessionUI, account_for, bar_text, optional_account

EMPTY_DRAFT: dict[str, Any] = {"requests": [], "items": []}


def figure_models(services: Services) -> list[tuple[str, str]]:
    return model_choices(services, services.catalogue.entries(Task.TEXT_TO_IMAGE, local=True), Task.TEXT_TO_IMAGE, "take")


def takes_price(services: Services, model: str, takes: int, token: str | None, profile=None) -> str:
    entry = services.catalogue.get(model)
    quote = services.catalogue.price(entry, Task.TEXT_TO_IMAGE, "1K", int(takes or 1))
    text = f"**Price:** {quote.text()}"
    account = optional_account(services, token, profile)
    if account is not None:
        text += f" · you have {account.balance_text()}"
        if not account.unlimited and account.balance < quote.total:
            text += " — **not enough**: fewer takes or a cheaper model"
    return text


def add_takes(draft: dict | None, info: dict) -> dict:
    draft = {"requests": list((draft or EMPTY_DRAFT)["requests"]), "items": list((draft or EMPTY_DRAFT)["items"])}
    draft["requests"].append(info["request_id"])
    for index, (path, seed) in enumerate(zip(info["files"], info["seeds"])):
        draft["items"].append({"request_id": info["request_id"], "index": index, "path": path, "seed": seed})
    return draft


def seed_or_random(seed: float | None) -> int | None:
    """A UI/API seed: -1 (or empty) means random (None for the services)."""
    return None if seed is None or int(seed) < 0 else int(seed)


def takes_outputs(services: Services, result, draft: dict | None, token: str, profile=None):
    """What a Generate-takes click returns: the takes so far, the JSON, the draft, no pick, a notice, the bar."""
    info = result.as_dict()
    state = add_takes(draft, info)
    after = account_for(services, token, profile)
    message = f"Charged {result.output.charged} credits · balance now **{after.balance_text()}**. Click the take to keep."
    if result.output.preview:
        message = f"⚠️ **{result.output.notice}**. " + message
    return takes_gallery(state, None), info, state, None, message, bar_text(after)


def takes_gallery(draft: dict, canonical: int | None) -> list[tuple[str, str]]:
    return [
        (item["path"], f"{'★ canonical · ' if i == canonical else ''}take {i + 1} · seed {item['seed']}")
        for i, item in enumerate(draft["items"])
    ]


@dataclass
class SaveUI:
    draft: gr.State
    pick: gr.State
    gallery: gr.Gallery


def build_takes_and_save(services: Services, session: SessionUI, prefix: str) -> SaveUI:
    """The takes gallery (select one to make it canonical), a name box and Save."""
    draft = gr.State(dict(EMPTY_DRAFT))
    pick = gr.State(None)
    gallery = gr.Gallery(fit_columns=False, label="Takes — click one to make it the canonical image", columns=4, height=340, format="png",
                         type="filepath", allow_preview=False, elem_id=f"{prefix}-takes")
    with gr.Row():
        name = gr.Textbox(label="Figure name", max_length=MAX_NAME, placeholder="e.g. Mara the cartographer", scale=3, elem_id=f"{prefix}-name")
        save = gr.Button("Save figure", variant="primary", scale=1, elem_id=f"{prefix}-save")
    saved = gr.Markdown("", elem_id=f"{prefix}-saved")

    def on_pick(state: dict, evt: gr.SelectData):
        return evt.index, takes_gallery(state, evt.index), f"Take {evt.index + 1} will be the canonical image. Name the figure and save."

    gallery.select(on_pick, [draft], [pick, gallery, saved], api_visibility="private")

    @user_errors
    def on_save(figure_name: str, state: dict, chosen: int | None, token: str, profile: gr.OAuthProfile | None = None):
        if not state["items"]:
            raise gr.Error("Generate takes first.")
        if chosen is None:
            raise gr.Error("Click the take that should be the canonical image first.")
        account = account_for(services, token, profile)
        item = state["items"][chosen]
        figure = services.figures.save(account, figure_name, state["requests"], item["request_id"], item["index"])
        note = f" {figure.identity_note}" if figure.identity_note else " Face embedding stored."
        message = f"Saved **{md(figure.name)}** with {len(figure.takes)} take(s); find it in All Figures.{note}"
        return message, dict(EMPTY_DRAFT), None, [], "", bar_text(account_for(services, token, profile))

    save.click(on_save, [name, draft, pick, session.token], [saved, draft, pick, gallery, name, session.bar], api_visibility="private")
    return SaveUI(draft, pick, gallery)
