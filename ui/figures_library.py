"""Figures > All Figures: the user's figures with search; details with every parameter, the canonical image
and all takes; set canonical, duplicate, delete (confirmed), and jump to Remix, Video or Characters."""
from __future__ import annotations

import gradio as gr

from services.container import Services

from . import figure_loras, figures_identity, reference_sheet
from .api import api, required
from .errors import clicked, user_errors
from .text import md
from .session import SessionUI, account_for
from .web import public_view


def _takes(figure) -> list[tuple[str, str]]:
    return [
        (t["file"], f"{'★ canonical · ' if t['id'] == figure.canonical_take else ''}take {i + 1} · seed {t['seed']}")
        for i, t in enumerate(figure.takes)
    ]


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab, tabs: dict, current_figure: gr.State) -> None:
    with gr.Row():
        search = gr.Textbox(label="Search by name or prompt", scale=4, elem_id="figures-search")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="figures-refresh")
    listing = gr.Gallery(fit_columns=False, label="Your figures", columns=5, height=300, format="png", type="filepath", allow_preview=False, elem_id="figures-gallery")
    ids = gr.State([])
    empty = gr.Markdown("", elem_id="figures-empty")
    with gr.Column(visible=False, elem_id="figure-details") as details_box:
        title = gr.Markdown("", elem_id="figure-title")
        with gr.Row():
            canonical = gr.Image(label="Canonical image", interactive=False, format="png", height=300, scale=1, elem_id="figure-canonical")
            takes = gr.Gallery(fit_columns=False, label="All takes (select one, then “Set as canonical”)", columns=4, height=300, format="png",
                               type="filepath", allow_preview=False, scale=2, elem_id="figure-takes")
        take_pick = gr.State(None)
        with gr.Row():
            set_canonical = gr.Button("Set as canonical", size="sm", elem_id="figure-set-canonical")
            duplicate = gr.Button("Duplicate", size="sm", elem_id="figure-duplicate")
            remix = gr.Button("Remix", size="sm")
            video = gr.Button("Make video", size="sm")
            character = gr.Button("Create character", size="sm")
        with gr.Row():
            confirm = gr.Checkbox(label="Yes, delete this figure", value=False, elem_id="figure-confirm")
            delete = gr.Button("Delete", variant="stop", size="sm", elem_id="figure-delete")
        action = gr.Markdown("", elem_id="figure-action")
        reference_sheet.build(services, session, current_figure)
        figure_loras.build(services, session, current_figure)
        figures_identity.build(services, session, current_figure)
        params = gr.JSON(label="Every parameter", elem_id="figure-params")

    @user_errors
    def show_list(query: str, token: str, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        found = services.figures.list(account, query)
        pictures = [(str(f.canonical_path), f.name) for f in found if f.canonical_path]
        message = "" if found else ("No figure matches." if query else "No figures yet: create one in Quick or Custom.")
        return pictures, [f.id for f in found if f.canonical_path], message

    list_outputs = [listing, ids, empty]
    gr.on([refresh.click, search.submit, tab.select], show_list, [search, session.token], list_outputs, api_visibility="private")

    def detail_outputs(figure):
        if figure is None:
            return gr.Column(visible=False), "", None, [], None, {}, ""
        heading = f"### {md(figure.name)}\n{figure.kind.title()} figure · {md(figure.style)} · {md(figure.model)} · {len(figure.takes)} take(s)"
        if figure.identity_note:
            heading += f"\n\n_{figure.identity_note}_"
        return gr.Column(visible=True), heading, str(figure.canonical_path), _takes(figure), figure.id, public_view(figure.as_dict(), services), ""

    details = [details_box, title, canonical, takes, current_figure, params, action]

    @user_errors
    def on_select(figure_ids: list[str], token: str, evt: gr.SelectData, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        return detail_outputs(services.figures.get(account, clicked(figure_ids, evt)))

    listing.select(on_select, [ids, session.token], details, api_visibility="private")
    def on_take(evt: gr.SelectData):
        return evt.index

    takes.select(on_take, None, take_pick, api_visibility="private")

    @user_errors
    def on_set_canonical(figure_id: str | None, index: int | None, token: str, profile: gr.OAuthProfile | None = None):
        if figure_id is None or index is None:
            raise gr.Error("Select a take first.")
        account = account_for(services, token, profile)
        figure = services.figures.get(account, figure_id)
        updated = services.figures.set_canonical(account, figure_id, figure.takes[index]["id"])
        out = list(detail_outputs(updated))
        out[-1] = f"Take {index + 1} is now canonical: Remix, edits and video will use it."
        return (*out, *show_list("", token, profile))

    set_canonical.click(on_set_canonical, [current_figure, take_pick, session.token], details + list_outputs, api_visibility="private")

    @user_errors
    def on_duplicate(figure_id: str | None, token: str, profile: gr.OAuthProfile | None = None):
        if figure_id is None:
            raise gr.Error("Select a figure first.")
        account = account_for(services, token, profile)
        copy = services.figures.duplicate(account, figure_id)
        out = list(detail_outputs(copy))
        out[-1] = f"Duplicated as **{md(copy.name)}**."
        return (*out, *show_list("", token, profile))

    duplicate.click(on_duplicate, [current_figure, session.token], details + list_outputs, api_visibility="private")

    @user_errors
    def on_delete(figure_id: str | None, sure: bool, token: str, profile: gr.OAuthProfile | None = None):
        if figure_id is None:
            raise gr.Error("Select a figure first.")
        account = account_for(services, token, profile)
        services.figures.delete(account, figure_id, bool(sure))
        return (*detail_outputs(None), False, *show_list("", token, profile))

    delete.click(on_delete, [current_figure, confirm, session.token], details + [confirm] + list_outputs, api_visibility="private")

    def jump(main: str, inner_key: str | None, inner_id: str | None, label: str):
        def go(figure_id: str | None):
            if figure_id is None:
                raise gr.Error("Select a figure first.")
            updates = [gr.Tabs(selected=main)]
            if inner_key:
                updates.append(gr.Tabs(selected=inner_id))
            return (*updates, f"Opened {label} with this figure.")

        return go

    remix.click(jump("images", "images", "images-remix", "Figure Remix"), [current_figure], [tabs["main"], tabs["images"], action], api_visibility="private")
    video.click(jump("video", "video", "video-figure", "Figure to Video"), [current_figure], [tabs["main"], tabs["video"], action], api_visibility="private")
    character.click(jump("characters", None, None, "Characters"), [current_figure], [tabs["main"], action], api_visibility="private")

    # -- API -------------------------------------------------------------------------------------------
    @user_errors
    def figure_save(token: str = "", name: str = "", request_id: str = "", canonical_index: int = 0,
                    other_request_ids: list[str] | None = None, profile: gr.OAuthProfile | None = None) -> dict:
        """Save takes as a figure; one take becomes its canonical image (the identity every later image reuses).

        Args:
            token: your session token from /session_start.
            name: the figure's name (up to 60 characters).
            request_id: a takes request from /figure_quick or /figure_custom.
            canonical_index: which take of request_id is the canonical image, from 0.
            other_request_ids: more takes requests (e.g. Regenerate clicks) whose takes to keep too.
        """
        account = account_for(services, token, profile)
        required(request_id=request_id)
        return services.figures.save(account, name, [*(other_request_ids or []), request_id], request_id, int(canonical_index)).as_dict()

    @user_errors
    def figures(token: str = "", search: str = "", profile: gr.OAuthProfile | None = None) -> list[dict]:
        """Your figures, newest first, each with its canonical image.

        Args:
            token: your session token from /session_start.
            search: only figures whose name or prompt contains this.
        """
        account = account_for(services, token, profile)
        return [f.as_dict() for f in services.figures.list(account, search)]

    @user_errors
    def figure(token: str = "", figure_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """One figure's details: every parameter, the canonical image, all takes with their seeds.

        Args:
            token: your session token from /session_start.
            figure_id: one of your figures (see /figures).
        """
        required(figure_id=figure_id)
        return services.figures.get(account_for(services, token, profile), figure_id).as_dict()

    @user_errors
    def figure_set_canonical(token: str = "", figure_id: str = "", take_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Make another take the canonical image (Remix, edits and video use it from then on).

        Args:
            token: your session token from /session_start.
            figure_id: one of your figures.
            take_id: the id of one of its takes (see /figure).
        """
        required(figure_id=figure_id, take_id=take_id)
        return services.figures.set_canonical(account_for(services, token, profile), figure_id, take_id).as_dict()

    @user_errors
    def figure_duplicate(token: str = "", figure_id: str = "", name: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Copy a figure (same takes and canonical image) under a new name.

        Args:
            token: your session token from /session_start.
            figure_id: one of your figures.
            name: the copy's name; "" appends "(copy)".
        """
        required(figure_id=figure_id)
        return services.figures.duplicate(account_for(services, token, profile), figure_id, name or None).as_dict()

    @user_errors
    def figure_delete(token: str = "", figure_id: str = "", confirm: bool = False, profile: gr.OAuthProfile | None = None) -> dict:
        """Delete a figure.

        Args:
            token: your session token from /session_start.
            figure_id: one of your figures.
            confirm: must be true (a safety catch).
        """
        required(figure_id=figure_id)
        services.figures.delete(account_for(services, token, profile), figure_id, bool(confirm))
        return {"deleted": figure_id}

    for fn in (figure_save, figures, figure, figure_set_canonical, figure_duplicate, figure_delete):
        api(services, fn, api_name=fn.__name__)
