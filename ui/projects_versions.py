"""The card page's version events (ui/projects_card.py lays the page out): view a version (a thumbnail, or the latest),
Restore, Approve / Reject / ⭐ on the viewed version only, Save shot as ref, Fork, the direction strip, New Version
(each version its own paid request; progress while they run, the balance after) and Upload your own version."""
from __future__ import annotations

import functools
import inspect
import time
from types import SimpleNamespace

import gradio as gr

from services.errors import UserError

from . import projects_refine, projects_view as view
from .errors import VisitorError, clicked, user_errors
from .session import account_for, bar_text
from .text import md

POLL_S = 0.5  # how often New Version looks at its versions while they run


def visitor_errors(gen):
    """`user_errors` for a generator event: a UserError raised while it runs is said in the visitor's words."""
    assert inspect.isgeneratorfunction(gen)

    @functools.wraps(gen)
    def wrapper(*args, **kwargs):
        try:
            yield from gen(*args, **kwargs)
        except UserError as exc:
            raise VisitorError(str(exc)) from exc

    return wrapper


def wire_versions(ui: SimpleNamespace) -> None:
    services, session = ui.services, ui.session
    projects = services.projects
    outputs = ui.outputs + [ui.status]

    def viewed_or_refuse(version_id: str) -> str:
        if not version_id:
            raise VisitorError("Make a version first: there is none to act on yet.")
        return version_id

    @user_errors
    def on_pick(card_id, shown, token, evt: gr.SelectData, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        version_id = clicked(shown, evt)
        return {**ui.render(account, projects.card(account, card_id, version_id)), ui.status: ""}

    ui.versions.select(on_pick, [ui.card_id, ui.shown, session.token], outputs, api_visibility="private")

    @user_errors
    def on_latest(card_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        return {**ui.render(account, projects.card(account, card_id)), ui.status: ""}

    ui.latest.click(on_latest, [ui.card_id, session.token], outputs, api_visibility="private")

    @user_errors
    def on_restore(version_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        card = projects.restore(account, viewed_or_refuse(version_id))
        number = card["viewing"]["number"]
        return {**ui.render(account, card, editor=True), ui.status: f"Restored v{number}'s prompt into the editor (saved as the draft)."}

    ui.restore.click(on_restore, [ui.viewed, session.token], outputs, api_visibility="private")

    def reviewing(review: str, said: str):
        @user_errors
        def on_review(card_id, version_id, token, profile: gr.OAuthProfile | None = None):
            account = account_for(services, token, profile)
            version = projects.review_version(account, viewed_or_refuse(version_id), review)
            return {**ui.render(account, projects.card(account, card_id, version["id"])),
                    ui.status: f"v{version['number']} {said}; no other version changed."}
        return on_review

    for button, review, said in ((ui.approve, "approved", "approved: it is in the project's showcase"),
                                 (ui.reject, "rejected", "rejected"), (ui.unreview, "none", "is not reviewed any more")):
        button.click(reviewing(review, said), [ui.card_id, ui.viewed, session.token], outputs, api_visibility="private")

    @user_errors
    def on_favourite(card_id, version_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        current = projects.version(account, viewed_or_refuse(version_id))
        version = projects.favourite(account, current["id"], not current["favourite"])
        said = "★ favourite" if version["favourite"] else "no longer a favourite"
        return {**ui.render(account, projects.card(account, card_id, version["id"])), ui.status: f"v{version['number']} is {said}."}

    ui.favourite.click(on_favourite, [ui.card_id, ui.viewed, session.token], outputs, api_visibility="private")

    @user_errors
    def on_shot(card_id, version_id, kind, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        ref = projects.save_shot(account, viewed_or_refuse(version_id), kind=kind or "object")
        return {**ui.render(account, projects.card(account, card_id, version_id)),
                ui.status: f"Saved as the ref “{md(ref['name'])}” ({md(ref['kind'])}): attach it below, or pool it in a scene."}

    ui.shot.click(on_shot, [ui.card_id, ui.viewed, ui.shot_kind, session.token], outputs, api_visibility="private")

    @user_errors
    def on_fork(version_id, name, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        card = projects.fork(account, viewed_or_refuse(version_id), name or "")
        return {**ui.render(account, card), ui.status: f"New direction “{md(card['direction']['name'])}”: its first ref is the "
                                                       "source image. New Version continues it."}

    ui.fork.click(on_fork, [ui.viewed, ui.fork_name, session.token], outputs, api_visibility="private")

    @user_errors
    def on_direction(card_id, direction_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        return {**ui.render(account, projects.switch_direction(account, card_id, direction_id)), ui.status: ""}

    ui.directions.input(on_direction, [ui.card_id, ui.directions, session.token], outputs, api_visibility="private")

    @user_errors
    def on_direction_rename(card_id, direction_id, name, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not card_id:
            raise VisitorError("Pick a card first.")
        card = projects.rename_direction(account, direction_id, name or "")
        return {**ui.render(account, card), ui.status: "Direction renamed."}

    ui.direction_rename.click(on_direction_rename, [ui.card_id, ui.directions, ui.direction_name, session.token], outputs,
                              api_visibility="private")

    @visitor_errors
    def generate(card_id, typed, refined, token, profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        """New Version: the card's count of versions, each its own paid request; the thumbnails fill in as they finish."""
        account = account_for(services, token, profile)
        if not card_id:
            raise VisitorError("Pick or create a card first.")
        before = account.balance
        started = projects.new_versions(account, card_id, prompt=(typed or "").strip() or None, refined=refined or None)
        ids, quote = started["version_ids"], started["quote"]
        total = len(ids)
        progress((0, total), desc="Generating versions", unit="versions")
        yield {**ui.render(account, projects.card(account, card_id)),
               ui.status: f"Started {total} version{'s' if total > 1 else ''} on {md(quote['model_name'])} "
                          f"({view.credits(quote['total'])} reserved, each refunded if it fails)…"}
        finished = 0
        while True:
            shown = [projects.version(account, v) for v in ids]
            done = sum(v["status"] != "generating" for v in shown)
            if done == total:
                break
            if done != finished:
                finished = done
                yield {ui.versions: view.thumbnails(projects.card(account, card_id)["versions"], ui.path_of)}
            progress((done, total), desc="Generating versions", unit="versions")
            time.sleep(POLL_S)
        account = account_for(services, token, profile)
        charged = 0 if account.unlimited else max(0, before - account.balance)
        yield {**ui.render(account, projects.card(account, card_id)),
               ui.status: view.after_run(shown, charged, account.balance_text()), session.bar: bar_text(account)}

    def new_version(card_id, typed, token, profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        yield from generate(card_id, typed, "", token, profile, progress)

    limits = {"concurrency_limit": services.settings.event_concurrency, "concurrency_id": "versions_new"}
    ui.new_version.click(new_version, [ui.card_id, ui.prompt, session.token], outputs + [session.bar], api_visibility="private",
                         show_progress_on=[ui.image], **limits)

    @user_errors
    def on_upload(card_id, upload, typed, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not card_id:
            raise VisitorError("Pick or create a card first.")
        if not upload:
            raise VisitorError("Choose the image to upload first (PNG, JPEG or WEBP).")
        version = projects.upload_version(account, card_id, upload, (typed or "").strip())
        return {**ui.render(account, projects.card(account, card_id)), ui.upload: None,
                ui.status: f"Added your image as v{version['number']} (uploaded; free)."}

    ui.upload_go.click(on_upload, [ui.card_id, ui.upload, ui.prompt, session.token], outputs + [ui.upload], api_visibility="private")
    projects_refine.wire(ui, generate, limits)
