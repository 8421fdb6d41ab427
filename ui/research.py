"""Research tab, Grids: declare prompts x models x seeds x one settings axis, see the whole grid's price before it
runs, watch one progress bar, and lay any two axes out as rows and columns. Your grids reopen from the list after a
reload or a restart. Every button calls the same function as its API endpoint (ui/research_api.py)."""
from __future__ import annotations

import html
import time

import gradio as gr

from services.catalogue import Task
from services.container import Services
from services.research.grids import AXES, LAYOUT_AXES, SURFACES, identity_text
from services.media.storage import OUTPUTS_URL

from . import arena as arena_ui
from .errors import user_errors
from .research_api import register
from .session import SessionUI, account_for, bar_text, optional_account


def grid_html(grid: dict) -> str:
    """The grid as a table: row and column labels, each position's cells with image, seed, steps, seconds, credits
    and (figure runs) identity score; failed cells say why."""
    esc = html.escape
    view = grid["layout"]
    head = "".join(f"<th>{esc(str(c))}</th>" for c in view["col_labels"])
    body = []
    for label, row in zip(view["row_labels"], view["table"]):
        tds = []
        for cells in row:
            parts = []
            for c in cells:
                facts = f"seed {c['seed']}" + (f" · {c['steps']} steps" if c.get("steps") else "")
                if c["value"] is not None and grid["spec"]["axis"] not in (view["rows"], view["cols"]):
                    facts += f" · {esc(grid['spec']['axis'])} {esc(str(c['value']))}"
                if c["status"] == "done":
                    shown = identity_text(c.get("identity"))
                    ident = f" · identity {esc(shown)}" if shown else ""
                    parts.append(f'<figure class="grid-cell"><img src="{OUTPUTS_URL}{esc(c["file"])}" width="160" alt="{esc(c["model"])}">'
                                 f"<figcaption>{facts} · {c['seconds']:.1f} s · {c['charged']} cr{ident}</figcaption></figure>")
                else:
                    note = esc(c["error"] or c["status"])
                    parts.append(f'<div class="grid-cell grid-{esc(c["status"])}"><b>{esc(c["status"])}</b> <small>{facts}<br>{note}</small></div>')
            tds.append(f"<td>{''.join(parts)}</td>")
        body.append(f"<tr><th style='max-width:220px;text-align:left'>{esc(str(label))}</th>{''.join(tds)}</tr>")
    counts = grid["counts"]
    summary = (f"<p><b>{esc(grid['grid_id'])}</b> · {esc(grid['status'])} · {counts['done']} done, {counts['failed']} failed"
               f"{', ' + str(counts['pending']) + ' waiting' if counts['pending'] else ''} · charged {grid['charged']} of "
               f"{grid['quoted']} quoted credits</p>")
    if grid.get("progress"):
        p = grid["progress"]
        summary += (f'<p class="grid-progress"><progress value="{p["done"]}" max="{max(p["total"], 1)}" style="width:60%"></progress> '
                    f"{esc(p['desc'])}</p>")
    if grid["status"] == "interrupted":
        summary += "<p>The app restarted while this grid ran: press Resume to run the cells left (finished ones are not paid again).</p>"
    return (summary + "<table border='1' cellspacing='0' cellpadding='4' style='border-collapse:collapse'>"
            f"<tr><th></th>{head}</tr>{''.join(body)}</table>")


def grid_choices(grids: list[dict]) -> list[tuple[str, str]]:
    """How a grid is listed: what it compares and when (its live status is in the view, so a label never goes stale)."""
    return [(f"{time.strftime('%d %b %H:%M', time.gmtime(g['created_at']))} · {g['cells']} cells · {', '.join(g['models'])} "
             f"· {g['prompts']} prompt(s)", g["grid_id"]) for g in grids]


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab, current_figure: gr.State) -> tuple[gr.Dropdown, gr.Tabs]:
    """The tab; returns the grid list and the sub-tabs, so History can reopen a grid here."""
    fns = register(services)
    models = [e.id for e in services.catalogue.entries(Task.TEXT_TO_IMAGE)]
    local = [e.id for e in services.catalogue.entries(Task.TEXT_TO_IMAGE, local=True)]
    sets = list(services.prompt_sets)
    with gr.Tabs() as research_tabs:
        with gr.Tab("Grids", id="research-grids"):
            gr.Markdown("Compare models side by side: prompts × models × seeds × one setting. Every cell is its own paid "
                        "request, kept with its full settings; the whole grid is priced before it starts.")
            with gr.Row():
                with gr.Column(scale=3):
                    source = gr.Radio(["One prompt", "Prompt set", "Upload"], value="Prompt set", label="Prompts", elem_id="grid-source")
                    prompt = gr.Textbox(label="Prompt (one per line)", lines=2, visible=False, elem_id="grid-prompt")
                    with gr.Row() as set_row:
                        prompt_set = gr.Dropdown(sets, value="starter" if "starter" in sets else (sets[0] if sets else None),
                                                 label="Prompt set", elem_id="grid-set")
                        category = gr.Dropdown(["", *sorted({p.category for s in services.prompt_sets.values() for p in s.prompts})],
                                               value="portraits", label="Category", elem_id="grid-category")
                        limit = gr.Number(value=2, precision=0, minimum=0, label="First N prompts (0 = all)", elem_id="grid-limit")
                    upload = gr.File(label="Your prompts (.txt, .csv, .jsonl)", file_types=[".txt", ".csv", ".jsonl"], visible=False,
                                     type="filepath", elem_id="grid-upload")
                    chosen = gr.CheckboxGroup(models, value=local[:2], label="Models (2-8)", elem_id="grid-models")
                    with gr.Row():
                        seeds = gr.Textbox(value="1, 2", label="Seeds (comma-separated)", elem_id="grid-seeds")
                        surface = gr.Radio(list(SURFACES), value="text-to-image", label="Surface", elem_id="grid-surface")
                        figure = gr.Dropdown([], label="Figure (remix, advanced)", allow_custom_value=True, elem_id="grid-figure")
                    with gr.Row():
                        axis = gr.Dropdown(["", *AXES["text-to-image"]], value="", label="Settings axis (optional)", elem_id="grid-axis")
                        values = gr.Textbox(value="", label="Axis values (comma-separated)", elem_id="grid-values")
                        ratio = gr.Dropdown(["1:1", "3:4", "4:3", "16:9", "9:16"], value="1:1", label="Aspect ratio")
                        tier = gr.Dropdown(["1K", "2K", "4K"], value="1K", label="Resolution")
                    price = gr.Markdown("", elem_id="grid-price")
                    run = gr.Button("Run grid", variant="primary", elem_id="grid-run")
                with gr.Column(scale=2):
                    listed = gr.Dropdown([], label="Your grids (reopen one)", allow_custom_value=True, elem_id="grid-list")
                    with gr.Row():
                        rows_axis = gr.Dropdown(list(LAYOUT_AXES), value="prompt", label="Rows", elem_id="grid-rows")
                        cols_axis = gr.Dropdown(list(LAYOUT_AXES), value="model", label="Columns", elem_id="grid-cols")
                    with gr.Row():
                        resume = gr.Button("Resume", size="sm", elem_id="grid-resume")
                        form = gr.Radio([("Parquet file", "parquet"), ("datasets folder (zip)", "dataset")], value="parquet",
                                        label="Export as", elem_id="grid-form")
                        export_btn = gr.Button("Export dataset", size="sm", elem_id="grid-export")
                    exported = gr.File(label="Dataset", interactive=False, elem_id="grid-exported")
                    with gr.Accordion("Push to the Hub (private dataset)", open=False):
                        hub_repo = gr.Textbox(label="Dataset repo (user/name)", elem_id="grid-hub-repo")
                        hub_token = gr.Textbox(label="Write token (used for this push only, never stored)", type="password",
                                               elem_id="grid-hub-token")
                        push_btn = gr.Button("Push", size="sm", elem_id="grid-push")
                        pushed = gr.Markdown("", elem_id="grid-pushed")
            view = gr.HTML(elem_id="grid-view")
            timer = gr.Timer(1.5, active=False)
        arena_ui.build(services, session, fns)

    inputs = [session.token, chosen, prompt, prompt_set, category, limit, upload, seeds, surface, axis, values, figure, ratio, tier, source]

    def args(token, models_, prompt_, set_, category_, limit_, upload_, seeds_, surface_, axis_, values_, figure_, ratio_, tier_, source_):
        lines = [line for line in (prompt_ or "").splitlines() if line.strip()]
        return dict(token=token, models=models_ or [], prompts=lines if source_ == "One prompt" else [],
                    prompt_set=set_ if source_ == "Prompt set" else "", category=category_ or "", prompt_limit=int(limit_ or 0),
                    prompt_file=upload_ if source_ == "Upload" else None, seeds=seeds_, surface=surface_, axis=axis_ or "",
                    values=values_ or "", figure_id=figure_ or "", aspect_ratio=ratio_, resolution=tier_)

    def show_price(*values, profile: gr.OAuthProfile | None = None):
        try:
            quote = fns["grid_quote"](**args(*values), profile=profile)
        except gr.Error as exc:
            return f"⚠️ {exc.message}"
        per = " · ".join(f"{p['model']}: {p['cells']} × {p['per_cell']}" for p in quote["per_model"])
        money = "unlimited (QA)" if quote["unlimited"] else f"your balance {quote['balance']}"
        return f"**{quote['cells']} cells · {quote['total']} credits** ({per}) · {money}"

    gr.on([c.change for c in inputs[1:]] + [tab.select, session.bar.change], show_price, inputs, [price], api_visibility="private")

    def switch(source_):
        return (gr.update(visible=source_ == "One prompt"), gr.update(visible=source_ == "Prompt set"),
                gr.update(visible=source_ == "Upload"))

    source.change(switch, [source], [prompt, set_row, upload], api_visibility="private")
    surface.change(lambda s: gr.Dropdown(["", *AXES[s]], value=""), [surface], [axis], api_visibility="private")

    def open_tab(token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        if account is None:
            return gr.update(), gr.update()
        mine = [(f.name, f.id) for f in services.figures.list(account)]
        grids = grid_choices(services.grids.listing(account))
        return gr.Dropdown(choices=mine), gr.Dropdown(choices=grids)

    gr.on([tab.select, session.bar.change], open_tab, [session.token], [figure, listed], api_visibility="private")

    def show(token, grid_id, rows, cols, profile: gr.OAuthProfile | None = None):
        """The grid, the timer (on while it runs) and the balance after its cells so far."""
        if not grid_id:
            return "", gr.Timer(active=False), gr.update()
        shown = fns["grid"](token=token, grid_id=grid_id, rows=rows, cols=cols, profile=profile)
        return grid_html(shown), gr.Timer(active=shown["status"] == "running"), bar_text(account_for(services, token, profile))

    @user_errors
    def on_run(*values, profile: gr.OAuthProfile | None = None):
        started = fns["grid_run"](**args(*values), profile=profile)
        account = account_for(services, values[0], profile)
        choices = grid_choices(services.grids.listing(account))
        return gr.Dropdown(choices=choices, value=started["grid_id"])

    run.click(on_run, inputs, [listed], api_visibility="private")
    view_inputs = [session.token, listed, rows_axis, cols_axis]
    gr.on([listed.change, rows_axis.change, cols_axis.change, timer.tick], user_errors(show), view_inputs, [view, timer, session.bar],
          api_visibility="private")

    @user_errors
    def on_resume(token, grid_id, rows, cols, profile: gr.OAuthProfile | None = None):
        fns["grid_resume"](token=token, grid_id=grid_id, profile=profile)
        return show(token, grid_id, rows, cols, profile)

    resume.click(on_resume, view_inputs, [view, timer, session.bar], api_visibility="private")
    export_btn.click(user_errors(lambda token, grid_id, form_: fns["grid_export"](token=token, grid_id=grid_id, form=form_)),
                     [session.token, listed, form], [exported], api_visibility="private")

    @user_errors
    def on_push(token, grid_id, repo, key, profile: gr.OAuthProfile | None = None):
        url = fns["dataset_push"](token=token, what="grid", grid_id=grid_id, hub_repo=repo, hub_token=key, profile=profile)["url"]
        return f"Pushed: {url}", ""

    push_btn.click(on_push, [session.token, listed, hub_repo, hub_token], [pushed, hub_token], api_visibility="private")
    return listed, research_tabs


def history_grids(services: Services, session: SessionUI, tab: gr.Tab, listed: gr.Dropdown, tabs: dict[str, gr.Tabs]) -> None:
    """History's list of your grids: pick one and open it in Research › Grids (after a reload or a restart too)."""
    gr.Markdown("**Your grids** (Research): open one to see its cells again, resume it or export it.")
    with gr.Row():
        picked = gr.Dropdown([], label="Grid", elem_id="history-grids", scale=3)
        open_btn = gr.Button("Open in Research", size="sm", elem_id="history-open-grid", scale=1)

    def listing(token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        grids = services.grids.listing(account) if account else []
        return gr.Dropdown(choices=grid_choices(grids))

    tab.select(listing, [session.token], [picked], api_visibility="private")

    @user_errors
    def open_grid(token, grid_id, profile: gr.OAuthProfile | None = None):
        if not grid_id:
            raise gr.Error("Pick a grid first.")
        account = account_for(services, token, profile)
        grids = services.grids.listing(account)
        choices = grid_choices(grids)
        return gr.Dropdown(choices=choices, value=grid_id), gr.Tabs(selected="research"), gr.Tabs(selected="research-grids")

    open_btn.click(open_grid, [session.token, picked], [listed, tabs["main"], tabs["research"]], api_visibility="private")
