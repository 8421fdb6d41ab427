"""Images > Figure Remix: one of your figures (or an uploaded face photo) in a new scene, with one
likeness <-> freedom control and an identity score on every output when a face pack is configured."""
from __future__ import annotations

import gradio as gr

from services.catalogue import ASPECT_RATIOS, Task
from services.container import Services
from services.creation.image_presets import scene_thumbnail
from services.creation.remix import FACE_PATH_LABELS

from .models import model_label
from .api import bounds, public, ui_event
from .errors import user_errors
from .figures_common import seed_or_random
from .session import SessionUI, account_for, bar_text, optional_account, stop_button, wire_stop


def model_choices(services: Services) -> list[tuple[str, str]]:
    def how(e) -> str:
        return ("keeps the face via reference image" if e.face_preservation == "reference"
                else "keeps the face via " + " / ".join(FACE_PATH_LABELS[p] for p in e.offered_face_paths))

    return [(model_label(services, e, e.tasks[0], "image", how(e)), e.id) for e in services.remix.remix_models()]


def score_text(info: dict) -> str:
    scores = info.get("parameters", {}).get("identity_scores")
    if scores is None:
        return "Identity score: off (no face engine installed; requirements.txt brings dlib)."
    parts = [f"image {i + 1}: {score_label(s)}" for i, s in enumerate(scores)]
    engine = info["parameters"].get("identity_engine") or ""
    scale = ("1 − dlib's face distance, the same person above +0.400" if engine.startswith("dlib")
             else "cosine of ArcFace embeddings")  # services/faces/engine.py: the two engines' scales
    return f"Identity score to the canonical face ({scale}; {engine or 'face engine'}): " + ", ".join(parts)


def score_label(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return f"{value:+.3f}"
    if "scores" in value:  # a group: one per figure
        return "; ".join(f"figure {fid[:8]} {score_label(s)}" for fid, s in value["scores"].items())
    return f"{value['note']} ({value['faces']}), best match {value['score']:+.3f}"


def sim_text(info: dict) -> str:
    """The identity monitor's line: each output's SimRef per recogniser, and the copy-paste flag."""
    sims = info.get("parameters", {}).get("sim_ref") or []

    def one(item: dict) -> str:
        scores = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in item.items() if k in ("dlib", "arcface"))
        return scores + (" ⚠️ copy-paste (closer than two real photos of one person)" if item.get("copy_paste") else "")

    parts = []
    for i, entry in enumerate(sims):
        if isinstance(entry, dict) and isinstance(entry.get("figures"), dict):
            parts.append(f"image {i + 1}: " + "; ".join(f"figure {f[:8]} {one(v)}" for f, v in entry["figures"].items()))
        elif isinstance(entry, dict):
            parts.append(f"image {i + 1}: {one(entry)}")
    return "SimRef to the canonical face: " + " · ".join(parts) if parts else ""


def result(services: Services, output, token, profile):
    after = account_for(services, token, profile)
    info = dict(output.info(), balance=after.balance)
    lines = []
    if output.preview:
        lines.append(f"⚠️ **{output.notice}** — real weights are not on this machine.")
    lines.append(f"Charged {output.charged} credits · balance now **{after.balance_text()}**.")
    lines.append(score_text(info))
    if sim_text(info):
        lines.append(sim_text(info))
    return [str(p) for p in output.files], info, "  \n".join(lines), bar_text(after)


def figure_picker(services: Services, selected, token, profile=None):
    """The figure dropdown (the session's figures, keeping the selection when it is still one of them) and the
    picked figure's canonical image."""
    options = figure_choices(services, token, profile)
    ids = [v for _, v in options]
    value = selected if selected in ids else (ids[0] if ids else None)
    account = optional_account(services, token, profile)
    image = str(services.figures.get(account, value).canonical_path) if value and account else None
    return gr.Dropdown(choices=options, value=value), image


def figure_choices(services: Services, token, profile=None):
    account = optional_account(services, token, profile)
    figures = services.figures.list(account) if account else []
    return [(f.name, f.id) for f in figures]


def face_path_picker(services: Services, model_id: str):
    """The face-path choice for a model: shown when it offers more than one adapter, its default first."""
    paths = services.catalogue.get(model_id).offered_face_paths if model_id else ()
    return gr.Dropdown(choices=[(FACE_PATH_LABELS[p], p) for p in paths], value=paths[0] if paths else None,
                       visible=len(paths) > 1)


def default_remix_model(services: Services) -> str:
    ids = [e.id for e in services.remix.remix_models()]
    return "qwen-image-edit" if "qwen-image-edit" in ids else ids[0]


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab, current_figure: gr.State) -> None:
    choices = model_choices(services)
    default = default_remix_model(services)
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                figure = gr.Dropdown([], label="Figure", allow_custom_value=True, scale=3, elem_id="remix-figure")
                refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100)
            scenes = services.image_presets.scenes
            scene_gallery = gr.Gallery([(scene_thumbnail(s), s.label) for s in scenes.values()], label="Recommended scenes — click one",
                                       columns=5, height=150, allow_preview=False, format="png", elem_id="remix-scenes")
            with gr.Accordion("…or upload a face photo instead", open=False):
                face_photo = gr.File(label="Face photo (PNG, JPEG or WEBP)", file_types=[".png", ".jpg", ".jpeg", ".webp"], type="filepath", height=100)
            prompt = gr.Textbox(label="New scene", lines=3, max_length=services.policy.limit("natural"), elem_id="remix-prompt",
                                value="sitting at a café table by a rainy window, warm evening light")
            model = gr.Dropdown(choices, value=default, label="Model", elem_id="remix-model")
            face_path = gr.Dropdown([], label="Face path (how the adapter keeps the face)", elem_id="remix-face-path",
                                    visible=False, info="FaceID: the face embedding · FaceID Plus v2: and the aligned face "
                                    "crop · InstantID: and the face's keypoints (ControlNet)")
            likeness = gr.Slider(value=0.7, step=0.05, **bounds("likeness"), label="Likeness ↔ freedom (1 = closest to the figure)", elem_id="remix-likeness")
            keep_style = gr.Checkbox(value=True, label="Keep the figure's style (untick to override it)", elem_id="remix-keep-style")
            with gr.Row():
                ratio = gr.Radio(list(ASPECT_RATIOS), value="1:1", label="Aspect ratio")
                count = gr.Slider(value=1, step=1, label="Images", **bounds("count"))
                seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", **bounds("seed"))
            price = gr.Markdown("", elem_id="remix-price")
            with gr.Row():
                go = gr.Button("Remix", variant="primary", elem_id="remix-generate")
                stop = stop_button("remix-stop")
        with gr.Column(scale=3):
            canonical = gr.Image(label="Canonical image", interactive=False, height=200, format="png")
            notice = gr.Markdown("", elem_id="remix-notice")
            gallery = gr.Gallery(label="Remixes", columns=2, height=420, format="png", type="filepath", elem_id="remix-gallery")
            info = gr.JSON(label="Settings used", elem_id="remix-info")

    @user_errors
    def list_figures(selected, token, profile: gr.OAuthProfile | None = None):
        return figure_picker(services, selected, token, profile)

    gr.on([tab.select, refresh.click, current_figure.change], list_figures, [current_figure, session.token], [figure, canonical], api_visibility="private")

    @user_errors
    def show_canonical(figure_id, token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        return str(services.figures.get(account, figure_id).canonical_path) if figure_id and account else None

    figure.input(show_canonical, [figure, session.token], [canonical], api_visibility="private")

    def pick_scene(evt: gr.SelectData):
        return list(scenes.values())[evt.index].fragment

    scene_gallery.select(pick_scene, None, [prompt], api_visibility="private")

    def show_price(model_id, images, token, profile: gr.OAuthProfile | None = None):
        entry = services.catalogue.get(model_id)
        task = Task.REFERENCE if entry.face_preservation == "reference" else Task.TEXT_TO_IMAGE
        quote = services.catalogue.price(entry, task, "1K", int(images))
        account = optional_account(services, token, profile)
        return f"**Price:** {quote.text()}" + (f" · you have {account.balance_text()}" if account else "")

    gr.on([model.change, count.change, tab.select, session.bar.change], show_price, [model, count, session.token], [price], api_visibility="private")
    gr.on([model.change, tab.select], lambda model_id: face_path_picker(services, model_id), [model], [face_path],
          api_visibility="private")

    @user_errors
    def figure_remix(
        figure_id: str = "",
        prompt: str = "",
        model: str = "",
        likeness: float = 0.7,
        aspect_ratio: str = "1:1",
        count: int = 1,
        seed: int = -1,
        face_photo: str | None = None,
        token: str = "",
        idempotency_key: str = "",
        keep_style: bool = True,
        face_path: str = "",
        profile: gr.OAuthProfile | None = None,
        progress=gr.Progress(),
    ):
        """The same face in a new scene. Returns PNGs, JSON with settings and identity scores, a notice, and the
        balance line.

        Args:
            figure_id: one of your figures (its canonical image is the identity); or give face_photo instead.
            prompt: the new scene.
            model: a face-keeping model id from /models; "" takes the default (Qwen-Image-Edit).
            likeness: 0-1: 1 keeps closest to the figure (adapter scale or reference strength).
            aspect_ratio: 1:1, 16:9, 9:16, 4:3 or 3:4.
            count: images, 1-4.
            seed: -1 for random.
            face_photo: an uploaded face photo instead of a figure.
            token: your session token from /session_start.
            idempotency_key: send the same key again to get the first result without being charged twice.
            keep_style: true (default) applies the figure's style register (its prompt fragments and negative prompt);
                false overrides it. The output's metadata records which.
            face_path: for face-adapter models (SDXL base): "ip-adapter-faceid", "ip-adapter-faceid-plusv2" or
                "instantid"; "" takes the model's first (see /models). Reference models ignore "".
        """
        account = account_for(services, token, profile)
        progress(0, desc="Loading model")
        output = services.remix.figure_remix(
            account, prompt=prompt, model=model or default_remix_model(services), figure_id=None if face_photo else (figure_id or None),
            face_photo=face_photo or None, idempotency_key=idempotency_key or None,
            likeness=likeness, aspect_ratio=aspect_ratio, count=int(count), seed=seed_or_random(seed), keep_style=bool(keep_style),
            face_path=face_path or None, on_step=lambda done, total: progress((done, total), desc="Remixing", unit="steps"),
        )
        return result(services, output, token, profile)

    wire_stop(services, session, stop, notice)
    outputs = [gallery, info, notice, session.bar]
    ui_event(services, go.click, figure_remix, {
        "figure_id": figure, "prompt": prompt, "model": model, "likeness": likeness, "aspect_ratio": ratio, "count": count,
        "seed": seed, "face_photo": face_photo, "token": session.token, "keep_style": keep_style, "face_path": face_path,
    }, outputs, api_name="figure_remix").then(show_price, [model, count, session.token], [price], api_visibility="private")
    public(services, figure_remix, outputs, api_name="figure_remix", like={"face_photo": face_photo, "aspect_ratio": ratio})
