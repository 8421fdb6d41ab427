"""Projects › Cards: the project's cards and one card's page. The image of the version you view, its thumbnails with
badges, the banner naming the version (and a shortcut to the latest), what that version ran with, and its actions
(Restore, Approve / Reject / ⭐, Save shot as ref, Fork), the direction strip; the prompt editor (Save draft and
auto-save on a revision), settings, refs and scene, the price of New Version before the click, New Version with its
progress and the balance after, Upload your own version, and the refine chat (ui/projects_refine.py)."""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import gradio as gr

from services.container import Services
from services.errors import UserError

from . import projects_refine, projects_view as view
from .errors import VisitorError, user_errors
from .projects_versions import wire_versions
from .session import SessionUI, account_for, stop_button, wire_stop
from .text import md

HINT = ("**Pick a card or make one** (left): write its prompt, pick its settings, see the price, and press **New Version**. "
        "Every version is kept: click a thumbnail to view it, approve the best, fork new directions.")


def build(services: Services, session: SessionUI, remember: gr.BrowserState, project_id: gr.State) -> SimpleNamespace:
    """The Cards sub-tab (inside the Projects tab's layout); returns its parts for the other modules' events."""
    projects, settings = services.projects, services.projects.settings
    ui = SimpleNamespace(services=services, session=session, remember=remember, project_id=project_id)
    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            ui.cards = gr.Radio([], label="Cards", elem_id="projects-cards")
            ui.new_title = gr.Textbox(label="New card", placeholder="Its title (optional)", max_lines=1, elem_id="projects-new-card-title")
            ui.new_card = gr.Button("+ New card", size="sm", elem_id="projects-new-card")
        with gr.Column(scale=5):
            ui.hint = gr.Markdown(HINT, elem_id="projects-card-hint")
            with gr.Column(visible=False) as ui.page:
                with gr.Row(equal_height=True):
                    ui.title = gr.Textbox(label="Card title", max_lines=1, scale=4, elem_id="projects-card-title")
                    ui.rename = gr.Button("Rename", size="sm", scale=0, min_width=90, elem_id="projects-card-rename")
                with gr.Row():
                    with gr.Column(scale=3, min_width=320):
                        with gr.Row(equal_height=True):
                            ui.banner = gr.Markdown(elem_id="projects-banner")
                            ui.latest = gr.Button("Go to the latest", size="sm", scale=0, min_width=150, visible=False,
                                                  elem_id="projects-latest")
                        ui.image = gr.Image(label="Version", interactive=False, format="png", height=380, elem_id="projects-image",
                                            buttons=["download", "fullscreen"])
                        ui.versions = gr.Gallery(fit_columns=False, label="Versions (click one to view it)", columns=6, height=170, object_fit="cover",
                                                 allow_preview=False, format="png", elem_id="projects-versions")
                        ui.viewed_md = gr.Markdown(elem_id="projects-viewed")
                        with gr.Row():
                            ui.restore = gr.Button("↩ Restore prompt", size="sm", elem_id="projects-restore")
                            ui.approve = gr.Button("✓ Approve", size="sm", elem_id="projects-approve")
                            ui.reject = gr.Button("✗ Reject", size="sm", elem_id="projects-reject")
                            ui.unreview = gr.Button("Clear review", size="sm", elem_id="projects-unreview")
                            ui.favourite = gr.Button("★ Favourite", size="sm", elem_id="projects-favourite")
                        with gr.Row(equal_height=True):
                            ui.shot_kind = gr.Dropdown(list(settings.ref_kinds), value=settings.ref_kinds[-1], label="Save shot as a ref of kind",
                                                       scale=2, elem_id="projects-shot-kind")
                            ui.shot = gr.Button("Save shot as ref", size="sm", scale=1, elem_id="projects-shot")
                        with gr.Row(equal_height=True):
                            ui.fork_name = gr.Textbox(label="Fork this version into a new direction named", max_lines=1, scale=3,
                                                      elem_id="projects-fork-name")
                            ui.fork = gr.Button("Fork", size="sm", scale=1, elem_id="projects-fork")
                        ui.directions = gr.Radio([], label="Directions (the strip: click one to switch)", elem_id="projects-directions")
                        with gr.Row(equal_height=True):
                            ui.direction_name = gr.Textbox(label="This direction's name", max_lines=1, scale=3, elem_id="projects-direction-name")
                            ui.direction_rename = gr.Button("Rename direction", size="sm", scale=1, elem_id="projects-direction-rename")
                    with gr.Column(scale=3, min_width=320):
                        ui.prompt = gr.Textbox(label="Prompt (saved as you type; drafts survive reloads)", lines=4, max_lines=12,
                                               max_length=2000, elem_id="projects-prompt")
                        with gr.Row(equal_height=True):
                            ui.save = gr.Button("Save draft", size="sm", scale=0, min_width=130, elem_id="projects-save")
                            ui.reload_draft = gr.Button("Load the saved draft", size="sm", scale=0, min_width=170, elem_id="projects-reload-draft")
                            ui.draft_status = gr.Markdown(elem_id="projects-draft-status")
                        with gr.Row():
                            ui.resolution = gr.Radio(list(settings.resolutions), label="Resolution", elem_id="projects-resolution")
                            ui.ratio = gr.Dropdown(list(settings.aspect_ratios), label="Aspect ratio", elem_id="projects-ratio")
                        with gr.Row():
                            ui.model_class = gr.Radio([(c.label, name) for name, c in settings.model_classes.items()],
                                                      label="Model class", elem_id="projects-class")
                            ui.count = gr.Radio([(f"x{n}", n) for n in settings.counts], label="Versions per click",
                                                elem_id="projects-count")
                        ui.card_refs = gr.CheckboxGroup([], label="This direction's refs (passed to a reference model)",
                                                        elem_id="projects-card-refs")
                        ui.scene = gr.Dropdown([("No scene", view.NO_SCENE)], value=view.NO_SCENE, label="Scene (its shots become refs too)",
                                               elem_id="projects-card-scene")
                        ui.quote = gr.Markdown(elem_id="projects-quote")
                        with gr.Row():
                            ui.new_version = gr.Button("New Version", variant="primary", elem_id="projects-new-version")
                            ui.stop = stop_button("projects-stop")
                        ui.status = gr.Markdown(elem_id="projects-status")
                        with gr.Accordion("Upload your own version (an image edited elsewhere; free)", open=False):
                            ui.upload = gr.Image(type="filepath", sources=["upload"], label="PNG, JPEG or WEBP", height=160,
                                                 elem_id="projects-upload")
                            ui.upload_go = gr.Button("Add it as the next version", size="sm", elem_id="projects-upload-go")
                        ui.refine = projects_refine.build(services)
    ui.card_id, ui.revision, ui.viewed, ui.shown = gr.State(""), gr.State(-1), gr.State(""), gr.State([])

    labels = {name: c.label for name, c in settings.model_classes.items()}

    def path_of(name: str) -> str:
        return str(services.store.path(name))

    def model_name(model_id: str) -> str:
        try:
            return services.catalogue.get(model_id).name
        except Exception:  # noqa: BLE001 - a model no longer in the registry: its id says which
            return model_id

    def render(account, card: dict[str, Any], editor: bool = False) -> dict:
        """Every panel of the card page for `card` (projects.card's dict); `editor` also puts its saved draft (and
        revision) in the editor, which otherwise keeps what the visitor is typing."""
        refs = projects.refs(account, card["project_id"])
        names = {r["id"]: view.ref_label(r) for r in refs}
        viewing = card["viewing"]
        version = projects.version(account, viewing["id"]) if viewing else None
        parents = {d["parent_version_id"]: projects.version(account, d["parent_version_id"])
                   for d in card["directions"] if d["parent_version_id"]}
        numbers = {i: v["number"] for i, v in parents.items()}
        try:
            quote = projects.quote_version(account, card["id"])
            quote_text = view.quote_md(quote, account.balance_text(), {r["id"] for r in card["refs"]})
        except UserError as exc:  # e.g. more refs than the model takes, with over_cap = "refuse"
            quote, quote_text = None, f"⚠️ {md(exc)}"
        s, finished = card["settings"], bool(viewing) and viewing["status"] in ("done", "uploaded")
        scenes = projects.scenes(account, card["project_id"])
        source = parents.get(card["direction"]["parent_version_id"])  # a fork without versions shows its source image
        image = path_of(source["file"]) if source and source["file"] else None
        if viewing:
            image = path_of(viewing["file"]) if viewing["file"] else view.placeholder(
                "generating..." if viewing["status"] == "generating" else "failed: refunded")
        out = {
            ui.hint: gr.Markdown(visible=False), ui.page: gr.Column(visible=True), ui.card_id: card["id"],
            ui.viewed: viewing["id"] if viewing else "", ui.shown: [v["id"] for v in card["versions"]],
            ui.cards: gr.Radio(value=card["id"]), ui.title: card["title"], ui.banner: view.banner(card, numbers),
            ui.latest: gr.Button(visible=bool(viewing) and viewing["id"] != card["latest"]), ui.image: image,
            ui.versions: view.thumbnails(card["versions"], path_of), ui.viewed_md: view.viewed_md(version, names, labels, model_name),
            ui.restore: gr.Button(interactive=bool(viewing)), ui.approve: gr.Button(interactive=finished),
            ui.reject: gr.Button(interactive=finished), ui.unreview: gr.Button(interactive=finished),
            ui.favourite: gr.Button(value="☆ Unstar" if viewing and viewing["favourite"] else "★ Favourite", interactive=finished),
            ui.shot: gr.Button(interactive=finished), ui.fork: gr.Button(interactive=finished),
            ui.fork_name: f"Fork of v{viewing['number']}" if viewing else "",
            ui.directions: gr.Radio(choices=view.direction_choices(card, numbers), value=card["direction"]["id"]),
            ui.direction_name: card["direction"]["name"], ui.resolution: s["resolution"], ui.ratio: s["aspect_ratio"],
            ui.model_class: s["model_class"], ui.count: s["count"],
            ui.card_refs: gr.CheckboxGroup(choices=view.ref_choices(refs), value=[r["id"] for r in card["refs"]]),
            ui.scene: gr.Dropdown(choices=[("No scene", view.NO_SCENE)] + view.scene_choices(scenes), value=card["scene_id"] or view.NO_SCENE),
            ui.quote: quote_text, ui.new_version: gr.Button(value=view.new_version_label(quote)),
            ui.remember: {"project": card["project_id"], "card": card["id"]},
        }
        if editor:
            out.update({ui.prompt: card["draft"], ui.revision: card["revision"],
                        ui.draft_status: f"Saved draft (revision {card['revision']})."})
        out.update(ui.refine.render(account, card["id"], quote))
        return out

    def empty(listing: list[dict[str, Any]] | None = None) -> dict:
        out = {ui.hint: gr.Markdown(visible=True), ui.page: gr.Column(visible=False), ui.card_id: "", ui.viewed: "", ui.shown: [],
               ui.revision: -1, ui.prompt: ""}
        if listing is not None:
            out[ui.cards] = gr.Radio(choices=view.card_choices(listing), value=None)
        return out

    def load(account, pid: str, card_id: str = "") -> dict:
        """The card list of project `pid` and the page of `card_id` (else its most recent card)."""
        if not pid:
            return empty([])
        listing = projects.cards(account, pid)
        ids = [c["id"] for c in listing]
        chosen = card_id if card_id in ids else (ids[0] if ids else "")
        if not chosen:
            return empty(listing)
        return {**render(account, projects.card(account, chosen), editor=True), ui.cards: gr.Radio(choices=view.card_choices(listing), value=chosen)}

    ui.render, ui.empty, ui.load, ui.path_of = render, empty, load, path_of
    ui.outputs = [ui.hint, ui.page, ui.card_id, ui.viewed, ui.shown, ui.cards, ui.title, ui.banner, ui.latest, ui.image, ui.versions,
                  ui.viewed_md, ui.restore, ui.approve, ui.reject, ui.unreview, ui.favourite, ui.shot, ui.fork, ui.fork_name,
                  ui.directions, ui.direction_name, ui.resolution, ui.ratio, ui.model_class, ui.count, ui.card_refs, ui.scene,
                  ui.quote, ui.new_version, ui.remember, ui.prompt, ui.revision, ui.draft_status, *ui.refine.outputs]
    outputs = ui.outputs + [ui.status]

    @user_errors
    def on_card(card_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        return {**render(account, projects.card(account, card_id), editor=True), ui.status: ""} if card_id else empty()

    ui.cards.input(on_card, [ui.cards, session.token], outputs, api_visibility="private")

    @user_errors
    def on_new_card(pid, title, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not pid:
            raise VisitorError("Pick or create a project first (at the top).")
        made = projects.create_card(account, pid, title or "")
        return {**load(account, pid, made["id"]), ui.new_title: "", ui.status: f"New card “{md(made['title'])}”: write its prompt."}

    gr.on([ui.new_card.click, ui.new_title.submit], on_new_card, [project_id, ui.new_title, session.token], outputs + [ui.new_title],
          api_visibility="private")

    @user_errors
    def on_rename(card_id, title, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        card = projects.rename_card(account, card_id, title or "")
        return {**load(account, card["project_id"], card_id), ui.status: "Renamed."}

    ui.rename.click(on_rename, [ui.card_id, ui.title, session.token], outputs, api_visibility="private")

    def saved(account, card_id: str, text: str, revision: int) -> dict:
        """Save the editor's text on the revision it was written on; a stale revision is refused with the service's
        message. Text equal to the saved draft (this visitor's own save a moment ago) is no change and no conflict."""
        current = projects.card(account, card_id)
        if current["draft"] == (text or "").strip():  # nothing new (or saved a moment ago): no new revision
            card = current
        else:
            card = projects.save_draft(account, card_id, text or "", int(revision))
        return {ui.revision: card["revision"], ui.draft_status: f"Saved draft (revision {card['revision']}) at {time.strftime('%H:%M:%S')}."}

    @user_errors
    def on_save(card_id, text, revision, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not card_id:
            raise VisitorError("Pick or create a card first.")
        try:
            return saved(account, card_id, text, revision)
        except UserError as exc:  # a stale revision: the text stays in the editor, the message says what to do
            gr.Warning(str(exc), title="Not saved")
            return {ui.draft_status: f"⚠️ **Not saved:** {md(exc)}"}

    ui.save.click(on_save, [ui.card_id, ui.prompt, ui.revision, session.token], [ui.revision, ui.draft_status], api_visibility="private")

    def on_autosave(card_id, text, revision, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not card_id:
            return {ui.draft_status: gr.skip()}
        try:
            return saved(account, card_id, text, revision)
        except UserError as exc:
            return {ui.draft_status: f"⚠️ **Not saved:** {md(exc)}"}

    for typed in (ui.prompt.input, ui.prompt.blur):  # as the visitor types, and when they leave the editor
        typed(on_autosave, [ui.card_id, ui.prompt, ui.revision, session.token], [ui.revision, ui.draft_status],
              api_visibility="private", trigger_mode="always_last", show_progress="hidden", concurrency_limit=None)

    @user_errors
    def on_reload_draft(card_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        card = projects.card(account, card_id)
        return {ui.prompt: card["draft"], ui.revision: card["revision"],
                ui.draft_status: f"Loaded the saved draft (revision {card['revision']})."}

    ui.reload_draft.click(on_reload_draft, [ui.card_id, session.token], [ui.prompt, ui.revision, ui.draft_status], api_visibility="private")

    def setting(name: str):
        @user_errors
        def on_setting(card_id, value, token, profile: gr.OAuthProfile | None = None):
            account = account_for(services, token, profile)
            return render(account, projects.card_settings(account, card_id, **{name: value}))
        return on_setting

    for name, component in (("resolution", ui.resolution), ("aspect_ratio", ui.ratio), ("model_class", ui.model_class), ("count", ui.count)):
        component.input(setting(name), [ui.card_id, component, session.token], ui.outputs, api_visibility="private")

    @user_errors
    def on_refs(card_id, chosen, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        attached = {r["id"] for r in projects.card(account, card_id)["refs"]}
        chosen = set(chosen or [])
        for ref_id in sorted(chosen ^ attached):
            projects.attach_ref(account, card_id, ref_id, ref_id in chosen)
        return render(account, projects.card(account, card_id))

    ui.card_refs.input(on_refs, [ui.card_id, ui.card_refs, session.token], ui.outputs, api_visibility="private")

    @user_errors
    def on_scene(card_id, scene_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        return render(account, projects.set_card_scene(account, card_id, scene_id or ""))

    ui.scene.input(on_scene, [ui.card_id, ui.scene, session.token], ui.outputs, api_visibility="private")
    wire_versions(ui)
    wire_stop(services, session, ui.stop, ui.status)
    return ui
