"""History: the visitor's past outputs (kept across restarts), with download, reuse prompt, and report."""
from __future__ import annotations

from typing import Any

import gradio as gr

from services.container import Services
from services.accounts.db import json_safe
from services.accounts.history import MAX_DETAILS, REPORT_REASONS

from .api import api, required
from .errors import user_errors
from .session import SessionUI, account_for, bar_text
from .text_mode import TextModeUI
from .web import public_view

LIMIT = 60


def _caption(record) -> str:
    prompt = record.request.get("prompt", "")
    prompt = prompt if len(prompt) <= 48 else prompt[:47] + "…"
    return f"{record.model} · {prompt}"


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab, text: TextModeUI, tabs: dict[str, gr.Tabs]) -> None:
    gr.Markdown("Everything you generated in this session, newest first. Select an image to download it, reuse its settings, or report it.")
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="history-refresh")
        status = gr.Markdown("", elem_id="history-status")
    gallery = gr.Gallery(fit_columns=False, label="Your images", columns=5, height=420, format="png", type="filepath", allow_preview=True, elem_id="history-gallery")
    items = gr.State([])
    selected = gr.State(None)
    with gr.Row():
        with gr.Column(scale=3):
            details = gr.JSON(label="Settings of the selected image", elem_id="history-details")
        with gr.Column(scale=2):
            download = gr.DownloadButton("Download PNG", value=None, interactive=False, elem_id="history-download")
            reuse = gr.Button("Reuse prompt in Text mode", interactive=False, elem_id="history-reuse")
            with gr.Group():
                reason = gr.Dropdown([(label, key) for key, label in REPORT_REASONS.items()], value="broken", label="Report this image", elem_id="history-reason")
                note = gr.Textbox(label="What is wrong (optional)", max_length=MAX_DETAILS, lines=2)
                report = gr.Button("Report image", interactive=False, elem_id="history-report")
            report_status = gr.Markdown("", elem_id="history-report-status")

    @user_errors
    def load(token: str, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        records = services.history.list(account.id, limit=LIMIT, media_only=True)  # chat replies make no files
        rows: list[dict[str, Any]] = []
        pictures = []
        for record in records:
            for idx, path in enumerate(record.files):
                rows.append({"generation_id": record.id, "idx": idx, "path": str(path)})
                pictures.append((str(path), _caption(record)))
        text_status = f"{len(pictures)} image(s) from {len(records)} generation(s)." if records else "Nothing yet: generate something in Images › Text."
        return pictures, rows, None, None, gr.update(value=None, interactive=False), gr.update(interactive=False), gr.update(interactive=False), text_status

    outputs = [gallery, items, selected, details, download, reuse, report, status]
    gr.on([refresh.click, tab.select], load, [session.token], outputs, api_name="history_view", api_visibility="private")
    session.loaded.then(load, [session.token], outputs, api_visibility="private")

    pending = gr.State(None)

    def on_pick(rows: list[dict], evt: gr.SelectData):
        """First, forget the previous selection: if the details fail to load, no button acts on a stale image."""
        row = rows[evt.index] if 0 <= evt.index < len(rows) else None
        return row, None, None, gr.update(value=None, interactive=False), gr.update(interactive=False), gr.update(interactive=False), ""

    @user_errors
    def on_select(row: dict | None, token: str, profile: gr.OAuthProfile | None = None):
        if not row:
            raise gr.Error("That image is no longer listed; press Refresh.")
        account = account_for(services, token, profile)
        record = services.history.get(account.id, row["generation_id"])
        shown = {
            "request_id": record.id,
            "image": row["idx"],
            "seed": record.seeds[row["idx"]] if row["idx"] < len(record.seeds) else None,
            "model": record.model,
            "charged": record.charged,
            "safety": record.safety,
            "preview": record.preview,
            "settings": record.request,
        }
        shown = public_view(json_safe(shown)[0], services)  # stored files as /outputs/ URLs, no server path
        return row, shown, gr.update(value=row["path"], interactive=True), gr.update(interactive=True), gr.update(interactive=True), ""

    gallery.select(on_pick, [items], [pending, selected, details, download, reuse, report, report_status], api_visibility="private").then(
        on_select, [pending, session.token], [selected, details, download, reuse, report, report_status], api_visibility="private"
    )

    @user_errors
    def reuse_prompt(row: dict | None, token: str, profile: gr.OAuthProfile | None = None):
        if not row:
            raise gr.Error("Select an image first.")
        account = account_for(services, token, profile)
        record = services.history.get(account.id, row["generation_id"])
        asked = record.request
        seed = record.seeds[row["idx"]] if row["idx"] < len(record.seeds) else asked.get("seed", -1)
        return (
            asked.get("prompt", ""),
            asked.get("prompt_style", "natural"),
            asked.get("negative_prompt", ""),
            asked.get("model"),
            asked.get("aspect_ratio", "1:1"),
            asked.get("resolution", "1K"),
            1,
            seed,
            asked.get("steps") or 0,
            -1 if asked.get("guidance") is None else asked["guidance"],
            gr.Tabs(selected="images"),
            gr.Tabs(selected="images-text"),
        )

    reuse.click(
        reuse_prompt,
        [selected, session.token],
        [text.prompt, text.style, text.negative, text.model, text.ratio, text.tier, text.count, text.seed, text.steps, text.guidance, tabs["main"], tabs["images"]],
        api_visibility="private",
    )

    @user_errors
    def report_selected(row: dict | None, reason_key: str, note_text: str, token: str, profile: gr.OAuthProfile | None = None):
        if not row:
            raise gr.Error("Select the image to report first.")
        account = account_for(services, token, profile)
        filed = services.history.report(account, row["generation_id"], row["idx"], reason_key, note_text)
        after = services.identity.account(account.id)
        if filed["status"] == "approved":
            message = f"Report filed and approved (QA): {filed['refund']} credit(s) refunded."
        else:
            message = f"Report filed. A reviewer will look at it; if approved, {filed['refund']} credit(s) come back to you."
        return message, "", bar_text(after)

    report.click(report_selected, [selected, reason, note, session.token], [report_status, note, session.bar], api_visibility="private")

    @user_errors
    def history(token: str = "", limit: int = 20, profile: gr.OAuthProfile | None = None) -> list[dict]:
        """The session's finished generations, newest first: request, parameters, seeds, files (as /outputs/ URLs of
        this server), credits charged and safety verdict.

        Args:
            token: your session token from /session_start.
            limit: how many generations, newest first.
        """
        account = account_for(services, token, profile)
        out = []
        for record in services.history.list(account.id, limit=int(limit)):
            item = record.as_dict()
            item["urls"] = list(item["files"])  # shown to clients as /outputs/<name> URLs
            out.append(item)
        return out

    @user_errors
    def report_image(token: str = "", request_id: str = "", index: int = 0, reason: str = "broken", details: str = "",
                     profile: gr.OAuthProfile | None = None) -> dict:
        """Report one image of one of your generations. Each image can be reported once; an approved report refunds
        that image's credits.

        Args:
            token: your session token from /session_start.
            request_id: one of your generations (see /history).
            index: which of its images, from 0.
            reason: broken, wrong_face, wrong_prompt, anatomy, unsafe or other.
            details: what is wrong (optional, up to 500 characters).
        """
        account = account_for(services, token, profile)
        required(request_id=request_id)
        return services.history.report(account, request_id, int(index), reason, details)

    api(services, history, api_name="history")
    api(services, report_image, api_name="report_image")
