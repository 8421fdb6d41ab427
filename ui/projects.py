"""Projects tab: a small team's shared work. At the top, the project selector (create, and in "Members, invites and
project settings": join by an invite link, add a member by id, remove, leave, rename, archive / restore). Below it the
project page: Cards (the card list and a card's page, ui/projects_card.py), Feed, Showcase, Scenes and Refs
(ui/projects_library.py). The last project and card opened come back after a reload. The endpoints are in
ui/projects_api.py and ui/projects_api_refs.py; how things are drawn is in ui/projects_view.py."""
from __future__ import annotations

from typing import Any

import gradio as gr

from services.container import Services

from . import projects_card, projects_view as view
from .errors import VisitorError, user_errors
from .projects_api import invite_code, register
from .projects_library import build_feed, build_refs, build_scenes, build_showcase
from .session import SessionUI, account_for, optional_account
from .text import md

INTRO = ("A **project** holds a team's cards, refs, scenes and versions; only its members see them. A **card** is a prompt "
         "you refine: every **New Version** is a paid request (the price shows before you click) and stays in the card's "
         "version tree; forks, approvals, refs, scenes and drafts are free. Approved versions form the **Showcase**.")
EMPTY = {"project": "", "card": ""}


def invite_link(request: gr.Request | None, code: str) -> str:
    """The link that opens this app with the invite code filled in (Projects › Members, invites and project settings)."""
    if request is None:
        return f"?invite={code}"
    headers = request.headers
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    scheme = headers.get("x-forwarded-proto") or ("https" if host.endswith(".hf.space") else "http")
    return f"{scheme}://{host}/?invite={code}" if host else f"?invite={code}"


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab) -> None:
    register(services)
    projects = services.projects
    remember = gr.BrowserState(EMPTY, storage_key="playground-projects", secret=services.identity.derive("projects-state"))
    project_id = gr.State("")
    gr.Markdown(INTRO, elem_id="projects-intro")
    with gr.Row():
        picker = gr.Dropdown([], value=None, label="Project", scale=3, elem_id="projects-project")
        new_name = gr.Textbox(label="New project", placeholder="Its name", max_lines=1, scale=2, elem_id="projects-new-name")
        create = gr.Button("Create project", variant="primary", scale=0, min_width=150, elem_id="projects-create")
    with gr.Accordion("Members, invites and project settings", open=False, elem_id="projects-members-box") as members_box:
        members = gr.Markdown(elem_id="projects-members")
        with gr.Row(equal_height=True):
            join_code = gr.Textbox(label="Join a project: paste its invite link (or code)", max_lines=1, scale=3, elem_id="projects-join-code")
            join = gr.Button("Join", size="sm", scale=1, elem_id="projects-join")
        with gr.Row(equal_height=True):
            member_id = gr.Textbox(label="Add a member by their member id (the owner)", max_lines=1, scale=3, elem_id="projects-member-id")
            add_member = gr.Button("Add member", size="sm", scale=1, elem_id="projects-member-add")
        with gr.Row(equal_height=True):
            member_pick = gr.Dropdown([], label="Remove a member (the owner)", scale=3, elem_id="projects-member-pick")
            remove = gr.Button("Remove", size="sm", variant="stop", scale=1, elem_id="projects-member-remove")
        with gr.Row(equal_height=True):
            rename_to = gr.Textbox(label="Rename the project (the owner)", max_lines=1, scale=3, elem_id="projects-rename-to")
            rename = gr.Button("Rename", size="sm", scale=1, elem_id="projects-rename")
        with gr.Row():
            archive = gr.Button("Archive the project", size="sm", elem_id="projects-archive")
            leave = gr.Button("Leave the project", size="sm", variant="stop", elem_id="projects-leave")
            show_archived = gr.Checkbox(False, label="List archived projects too", elem_id="projects-show-archived")
    top_status = gr.Markdown(elem_id="projects-top-status")
    with gr.Tabs():
        with gr.Tab("Cards", id="projects-cards-tab") as cards_tab:
            cards = projects_card.build(services, session, remember, project_id)
        with gr.Tab("Feed", id="projects-feed-tab") as feed_tab:
            feed = build_feed(services, session, project_id)
        with gr.Tab("Showcase", id="projects-showcase-tab") as showcase_tab:
            showcase = build_showcase(services)
        with gr.Tab("Scenes", id="projects-scenes-tab") as scenes_tab:
            scenes = build_scenes(services, session, project_id)
        with gr.Tab("Refs", id="projects-refs-tab") as refs_tab:
            refs = build_refs(services, session, project_id)

    top_outputs = [picker, project_id, members, member_pick, rename_to, archive, leave]
    everything = top_outputs + cards.outputs + [cards.status] + feed.outputs + showcase.outputs + scenes.outputs + refs.outputs + [top_status]

    def top(account, pid: str, archived: bool, request: gr.Request | None) -> dict:
        listing = projects.projects(account, archived=bool(archived))
        current = projects.project(account, pid) if pid else None
        if current and current["archived"] and not any(p["id"] == pid for p in listing):
            listing.append({"id": pid, "name": current["name"], "role": current["role"], "archived": True})
        owner = bool(current) and current["role"] == "owner"
        others = [(f"{m['name']} ({m['account_id']})", m["account_id"]) for m in (current or {}).get("members", [])
                  if m["account_id"] != account.id]
        return {picker: gr.Dropdown(choices=view.project_choices(listing), value=pid or None), project_id: pid,
                members: view.members_md(current, account.id, invite_link(request, current["invite"]) if owner else ""),
                member_pick: gr.Dropdown(choices=others, value=None, interactive=owner and bool(others)),
                rename_to: current["name"] if current else "",
                archive: gr.Button(value="Restore the project" if current and current["archived"] else "Archive the project",
                                   interactive=owner),
                leave: gr.Button(interactive=bool(current) and not owner)}

    def page(account, pid: str, token: str, profile, request, card_id: str = "", archived: bool = False) -> dict:
        """Every panel of the tab for project `pid` ("" = none): the top, the card page, feed, showcase, scenes, refs."""
        out = top(account, pid, archived, request)
        out.update(cards.load(account, pid, card_id))
        out.update(feed.load(account, pid))
        out.update(showcase.load(account, pid))
        out.update(scenes.load(account, pid))
        out.update(refs.load(account, pid, token, profile))
        if not pid:
            out[cards.remember] = EMPTY
        return out

    def first_project(account, wanted: str = "") -> str:
        ids = [p["id"] for p in projects.projects(account)]
        return wanted if wanted in ids else (ids[0] if ids else "")

    def on_reload(kept, token, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """Page load: the project and card opened last (kept in this browser), and an invite link's code, if any."""
        account = optional_account(services, token, profile)
        if account is None:
            return {picker: gr.skip()}  # nothing to change
        kept = kept if isinstance(kept, dict) else EMPTY
        out = page(account, first_project(account, str(kept.get("project") or "")), token, profile, request,
                   str(kept.get("card") or ""))
        code = (request.query_params.get("invite") if request is not None else None) or ""
        if code:
            out.update({join_code: code, members_box: gr.Accordion(open=True),
                        top_status: "You opened an invite link: press **Join** (in Members, invites and project settings) to join "
                                    "the project."})
        return out

    session.loaded.then(on_reload, [remember, session.token], everything + [join_code, members_box], api_visibility="private")

    def on_tab(pid, kept, token, request: gr.Request, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        if account is None:
            return {picker: gr.skip()}
        if pid:  # the list may have changed elsewhere (a member added you); the page stays as it is
            return top(account, pid, False, request)
        kept = kept if isinstance(kept, dict) else EMPTY
        return page(account, first_project(account, str(kept.get("project") or "")), token, profile, request, str(kept.get("card") or ""))

    tab.select(on_tab, [project_id, remember, session.token], everything, api_visibility="private")

    @user_errors
    def on_pick(pid, archived, token, request: gr.Request, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        return {**page(account, pid or "", token, profile, request, archived=archived), top_status: ""}

    picker.input(on_pick, [picker, show_archived, session.token], everything, api_visibility="private")
    show_archived.input(on_pick, [project_id, show_archived, session.token], everything, api_visibility="private")

    @user_errors
    def on_create(name, token, request: gr.Request, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        made = projects.create_project(account, name or "")
        return {**page(account, made["id"], token, profile, request), new_name: "",
                top_status: f"Project “{md(made['name'])}” created: make its first card below. Invite your team from "
                            "Members, invites and project settings."}

    gr.on([create.click, new_name.submit], on_create, [new_name, session.token], everything + [new_name], api_visibility="private")

    @user_errors
    def on_join(code, token, request: gr.Request, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not (code or "").strip():
            raise VisitorError("Paste the invite link (or its code) the project's owner shared first.")
        joined = projects.join_project(account, invite_code(code))
        return {**page(account, joined["id"], token, profile, request), join_code: "",
                top_status: f"You joined “{md(joined['name'])}”."}

    join.click(on_join, [join_code, session.token], everything + [join_code], api_visibility="private")

    def owner_action(act, said):
        @user_errors
        def on_action(pid, value, token, request: gr.Request, profile: gr.OAuthProfile | None = None):
            account = account_for(services, token, profile)
            if not pid:
                raise VisitorError("Pick or create a project first.")
            result = act(account, pid, value)
            return {**top(account, pid, False, request), top_status: said(result, value)}
        return on_action

    add = owner_action(lambda a, pid, v: projects.add_member(a, pid, (v or "").strip()), lambda r, v: f"Added {md(v)} to the project.")
    add_member.click(add, [project_id, member_id, session.token], top_outputs + [top_status], api_visibility="private")
    drop = owner_action(lambda a, pid, v: projects.remove_member(a, pid, v or ""), lambda r, v: "Removed: they lost access at once.")
    remove.click(drop, [project_id, member_pick, session.token], top_outputs + [top_status], api_visibility="private")
    renamed = owner_action(lambda a, pid, v: projects.rename_project(a, pid, v or ""), lambda r, v: f"Renamed to “{md(r['name'])}”.")
    rename.click(renamed, [project_id, rename_to, session.token], top_outputs + [top_status], api_visibility="private")

    @user_errors
    def on_archive(pid, token, request: gr.Request, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not pid:
            raise VisitorError("Pick or create a project first.")
        result = projects.archive_project(account, pid, not projects.project(account, pid)["archived"])
        said = ("Archived: it is read-only and listed only with “List archived projects too”." if result["archived"]
                else "Restored: the project can be changed again.")
        return {**page(account, pid, token, profile, request, archived=True), show_archived: True, top_status: said}

    archive.click(on_archive, [project_id, session.token], everything + [show_archived], api_visibility="private")

    @user_errors
    def on_leave(pid, token, request: gr.Request, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not pid:
            raise VisitorError("Pick a project first.")
        name = projects.project(account, pid)["name"]
        projects.leave_project(account, pid)
        return {**page(account, first_project(account), token, profile, request), top_status: f"You left “{md(name)}”."}

    leave.click(on_leave, [project_id, session.token], everything, api_visibility="private")

    def refresher(part: Any, with_token: bool = False):
        def on_select(pid, token, profile: gr.OAuthProfile | None = None):
            account = optional_account(services, token, profile)
            if account is None or not pid:
                return {part.outputs[0]: gr.skip()}
            return part.load(account, pid, token, profile) if with_token else part.load(account, pid)
        return on_select

    showcase_tab.select(refresher(showcase), [project_id, session.token], showcase.outputs, api_visibility="private")
    scenes_tab.select(refresher(scenes), [project_id, session.token], scenes.outputs, api_visibility="private")
    refs_tab.select(refresher(refs, True), [project_id, session.token], refs.outputs, api_visibility="private")
    feed_tab.select(feed.on_filters, feed.inputs, feed.outputs, api_visibility="private")

    def on_cards_tab(card_id, token, profile: gr.OAuthProfile | None = None):
        """Back on Cards: refs and scenes made meanwhile are offered on the card page (the editor keeps its text)."""
        account = optional_account(services, token, profile)
        if account is None or not card_id:
            return {cards.title: gr.skip()}
        return cards.render(account, projects.card(account, card_id))

    cards_tab.select(on_cards_tab, [cards.card_id, session.token], cards.outputs, api_visibility="private")
