"""Projects › Feed, Showcase, Scenes and Refs: the project's finished versions with the Approved and Mine filters and a
prompt search in two views (Cards: the full card, prompt and status; Gallery: a compact grid with version badges and
status dots), the showcase (approved versions), scenes and their pools of shots, and the project's refs (upload,
from one of your figures; a version's shot is saved from the card page)."""
from __future__ import annotations

from types import SimpleNamespace
import gradio as gr

from services.container import Services
from services.errors import UserError

from . import projects_view as view
from .errors import VisitorError, user_errors
from .remix import figure_choices
from .session import SessionUI, account_for
from .text import md

VIEWS = [("Cards", "cards"), ("Gallery", "gallery")]


def build_feed(services: Services, session: SessionUI, project_id: gr.State) -> SimpleNamespace:
    """The Feed and Showcase sub-tabs' contents are built by the caller's tabs: call inside the Feed tab."""
    projects = services.projects
    f = SimpleNamespace()
    with gr.Row(equal_height=True):
        f.approved = gr.Checkbox(False, label="Approved", elem_id="projects-feed-approved", scale=0, min_width=120)
        f.mine = gr.Checkbox(False, label="Mine", elem_id="projects-feed-mine", scale=0, min_width=100)
        f.view = gr.Radio(VIEWS, value="cards", label="View", elem_id="projects-feed-view", scale=1)
        f.search = gr.Textbox(label="Search the prompts (at least 2 characters)", max_lines=1, scale=2, elem_id="projects-feed-search")
        f.go = gr.Button("Search", size="sm", scale=0, min_width=100, elem_id="projects-feed-go")
        f.page = gr.Number(1, label="Page", precision=0, minimum=1, scale=0, min_width=90, elem_id="projects-feed-page")
    f.summary = gr.Markdown(elem_id="projects-feed-summary")
    f.cards = gr.HTML(elem_id="projects-feed-cards")
    f.gallery = gr.Gallery(fit_columns=False, label="Gallery", columns=6, height=420, object_fit="cover", allow_preview=True, format="png", visible=False,
                           elem_id="projects-feed-gallery")
    f.outputs = [f.summary, f.cards, f.gallery]

    def load(account, pid: str, approved=False, mine=False, search="", shown="cards", page=1) -> dict:
        if not pid:
            return {f.summary: "Pick or create a project (at the top).", f.cards: "", f.gallery: gr.Gallery(value=[], visible=False)}
        feed = projects.feed(account, pid, approved=bool(approved), mine=bool(mine), search=search or "", view=shown or "cards",
                             page=max(1, int(page or 1)))
        gallery = shown == "gallery"
        return {f.summary: view.feed_summary(feed), f.cards: gr.HTML(view.feed_cards(feed) if not gallery else "", visible=not gallery),
                f.gallery: gr.Gallery(value=view.feed_gallery(feed, lambda n: str(services.store.path(n))) if gallery else [],
                                      visible=gallery)}

    def on_filters(pid, approved, mine, search, shown, page, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        try:
            return load(account, pid, approved, mine, search, shown, page)
        except UserError as exc:  # a search too short: said where the results are, the results stay as they were
            gr.Warning(str(exc), title="Not searched")
            return {f.summary: f"⚠️ {md(exc)}"}

    inputs = [project_id, f.approved, f.mine, f.search, f.view, f.page, session.token]
    gr.on([f.approved.input, f.mine.input, f.view.input, f.go.click, f.search.submit, f.page.submit], on_filters, inputs,
          f.outputs, api_visibility="private")
    f.load = load
    f.inputs = inputs
    f.on_filters = on_filters
    return f


def build_showcase(services: Services) -> SimpleNamespace:
    s = SimpleNamespace()
    gr.Markdown("The project's **showcase**: every approved version, newest first (approve one on its card).")
    s.summary = gr.Markdown(elem_id="projects-showcase-summary")
    s.gallery = gr.Gallery(fit_columns=False, label="Showcase", columns=5, height=420, object_fit="cover", format="png", elem_id="projects-showcase")
    s.outputs = [s.summary, s.gallery]

    def load(account, pid: str) -> dict:
        if not pid:
            return {s.summary: "", s.gallery: []}
        shown = services.projects.showcase(account, pid)
        return {s.summary: view.feed_summary(shown, "approved version"),
                s.gallery: view.feed_gallery(shown, lambda n: str(services.store.path(n)))}

    s.load = load
    return s


def build_scenes(services: Services, session: SessionUI, project_id: gr.State) -> SimpleNamespace:
    projects = services.projects
    s = SimpleNamespace()
    gr.Markdown("A **scene** is a pool of shots (refs). A card set in a scene (on its page) passes the pool's shots as "
                "references automatically, after its own refs and within the model's reference cap. Free.")
    with gr.Row(equal_height=True):
        s.name = gr.Textbox(label="New scene", placeholder="Its name", max_lines=1, scale=3, elem_id="projects-scene-name")
        s.create = gr.Button("+ Create scene", size="sm", scale=1, elem_id="projects-scene-create")
    s.scene = gr.Dropdown([], label="Scene", elem_id="projects-scene")
    s.shots = gr.Gallery(fit_columns=False, label="Its pool of shots", columns=6, height=200, object_fit="cover", format="png", elem_id="projects-scene-shots")
    with gr.Row(equal_height=True):
        s.ref = gr.Dropdown([], label="A ref of the project (save a version's shot as a ref on its card)", scale=3,
                            elem_id="projects-scene-ref")
        s.add = gr.Button("Add to the pool", size="sm", scale=1, elem_id="projects-scene-add")
        s.remove = gr.Button("Take out of the pool", size="sm", scale=1, elem_id="projects-scene-remove")
    s.status = gr.Markdown(elem_id="projects-scene-status")
    s.outputs = [s.scene, s.shots, s.ref]

    def load(account, pid: str, scene_id: str = "") -> dict:
        if not pid:
            return {s.scene: gr.Dropdown(choices=[], value=None), s.shots: [], s.ref: gr.Dropdown(choices=[], value=None)}
        scenes = projects.scenes(account, pid)
        chosen = next((sc for sc in scenes if sc["id"] == scene_id), scenes[0] if scenes else None)
        refs = projects.refs(account, pid)
        return {s.scene: gr.Dropdown(choices=view.scene_choices(scenes),
                                     value=chosen["id"] if chosen else None),
                s.shots: [(str(services.store.path(r["file"])), view.ref_label(r)) for r in chosen["shots"]] if chosen else [],
                s.ref: gr.Dropdown(choices=view.ref_choices(refs), value=None)}

    @user_errors
    def on_create(pid, name, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not pid:
            raise VisitorError("Pick or create a project first (at the top).")
        scene = projects.create_scene(account, pid, name or "")
        return {**load(account, pid, scene["id"]), s.name: "", s.status: f"Scene “{md(scene['name'])}” created: add shots to its pool."}

    gr.on([s.create.click, s.name.submit], on_create, [project_id, s.name, session.token], s.outputs + [s.name, s.status],
          api_visibility="private")

    @user_errors
    def on_scene(pid, scene_id, token, profile: gr.OAuthProfile | None = None):
        return load(account_for(services, token, profile), pid, scene_id)

    s.scene.input(on_scene, [project_id, s.scene, session.token], s.outputs, api_visibility="private")

    def pooling(pooled: bool):
        @user_errors
        def on_pool(pid, scene_id, ref_id, token, profile: gr.OAuthProfile | None = None):
            account = account_for(services, token, profile)
            if not scene_id:
                raise VisitorError("Create or pick a scene first.")
            if not ref_id:
                raise VisitorError("Pick a ref first (Refs: upload one, or save a version's shot on its card).")
            scene = (projects.add_shot if pooled else projects.remove_shot)(account, scene_id, ref_id)
            return {**load(account, pid, scene_id), s.status: f"“{md(scene['name'])}” has {view.plural(len(scene['shots']), 'shot')} in its pool."}
        return on_pool

    for button, pooled in ((s.add, True), (s.remove, False)):
        button.click(pooling(pooled), [project_id, s.scene, s.ref, session.token], s.outputs + [s.status], api_visibility="private")
    s.load = load
    return s


def build_refs(services: Services, session: SessionUI, project_id: gr.State) -> SimpleNamespace:
    projects, kinds = services.projects, list(services.projects.settings.ref_kinds)
    s = SimpleNamespace()
    gr.Markdown("**Refs** are photos of characters, locations and objects that guide generation: attach them to a card "
                "(its page), or pool them in a scene. Upload one, add one of your figures, or save a version's shot on its "
                "card. Free; uploads go through the upload checks and the output check.")
    with gr.Row():
        with gr.Column(scale=1, min_width=240):
            s.upload = gr.Image(type="filepath", sources=["upload"], label="Upload a photo (PNG, JPEG or WEBP)", height=180,
                                elem_id="projects-ref-upload")
        with gr.Column(scale=1, min_width=240):
            s.kind = gr.Radio(kinds, value=kinds[0], label="Kind", elem_id="projects-ref-kind")
            s.name = gr.Textbox(label="Name", max_lines=1, elem_id="projects-ref-name")
            s.add = gr.Button("Add the upload as a ref", size="sm", elem_id="projects-ref-add")
            s.figure = gr.Dropdown([], label="Or one of your figures (its canonical image, as a character ref)", elem_id="projects-ref-figure")
            s.add_figure = gr.Button("Add the figure", size="sm", elem_id="projects-ref-add-figure")
    s.status = gr.Markdown(elem_id="projects-ref-status")
    s.gallery = gr.Gallery(fit_columns=False, label="The project's refs", columns=6, height=240, object_fit="cover", format="png", elem_id="projects-refs")
    s.outputs = [s.gallery, s.figure]

    def load(account, pid: str, token: str = "", profile=None) -> dict:
        figures = gr.Dropdown(choices=figure_choices(services, token, profile) if token else [], value=None)
        if not pid:
            return {s.gallery: [], s.figure: figures}
        source = {"upload": "uploaded", "shot": "a version's shot", "figure": "a figure"}
        return {s.gallery: [(str(services.store.path(r["file"])), f"{view.ref_label(r)} · {source.get(r['source'], r['source'])}")
                            for r in projects.refs(account, pid)], s.figure: figures}

    @user_errors
    def on_add(pid, upload, kind, name, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not pid:
            raise VisitorError("Pick or create a project first (at the top).")
        if not upload:
            raise VisitorError("Choose the photo to upload first (PNG, JPEG or WEBP).")
        ref = projects.add_ref(account, pid, kind, name or "", upload)
        return {**load(account, pid, token, profile), s.upload: None, s.name: "",
                s.status: f"Added the ref “{md(ref['name'])}” ({md(ref['kind'])})."}

    s.add.click(on_add, [project_id, s.upload, s.kind, s.name, session.token], s.outputs + [s.upload, s.name, s.status],
                api_visibility="private")

    @user_errors
    def on_add_figure(pid, figure_id, name, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not pid:
            raise VisitorError("Pick or create a project first (at the top).")
        if not figure_id:
            raise VisitorError("Pick one of your figures first (make one in Figures).")
        ref = projects.ref_from_figure(account, pid, figure_id, name or "")
        return {**load(account, pid, token, profile), s.status: f"Added “{md(ref['name'])}” (character) from your figure."}

    s.add_figure.click(on_add_figure, [project_id, s.figure, s.name, session.token], s.outputs + [s.status], api_visibility="private")
    s.load = load
    return s

