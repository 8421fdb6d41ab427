"""Figures > Custom: describe a figure in your own words with full settings; generate takes; pick; save."""
from __future__ import annotations

import gradio as gr

from services.catalogue import ASPECT_RATIOS
from services.container import Services
from services.runs.params import MAX_TAKES
from services.creation.figures import CUSTOM_FIELDS

from .api import bounds, public, ui_event
from .errors import user_errors
from .figures_common import build_takes_and_save, figure_models, seed_or_random, takes_outputs, takes_price
from .session import SessionUI, account_for, stop_button, wire_stop


def build(services: Services, demo: gr.Blocks, session: SessionUI) -> None:
    presets = services.figure_presets
    with gr.Row():
        with gr.Column(scale=3):
            appearance = gr.Textbox(
                label="Appearance", lines=4, max_length=CUSTOM_FIELDS["appearance"], elem_id="custom-appearance",
                placeholder="woman in her thirties, heart-shaped face, copper hair in a low braid, grey eyes, freckles",
            )
            outfit = gr.Textbox(label="Outfit", max_length=CUSTOM_FIELDS["outfit"], placeholder="a navy pea coat over a striped shirt", elem_id="custom-outfit")
            style = gr.Radio(presets.choices_for("style"), value="photoreal", label="Style register", elem_id="custom-style")
            negative = gr.Textbox(label="Negative prompt (added to the style's)", max_length=services.policy.limit("natural"), placeholder="hat, sunglasses")
        with gr.Column(scale=2):
            model = gr.Dropdown(figure_models(services), value=services.figures.default_model("photoreal"), label="Model", elem_id="custom-model")
            with gr.Row():
                ratio = gr.Radio(list(ASPECT_RATIOS), value="3:4", label="Aspect ratio")
                tier = gr.Radio(["1K", "2K"], value="1K", label="Resolution")
            with gr.Row():
                takes = gr.Slider(1, MAX_TAKES, value=2, step=1, label="Takes")
                seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", **bounds("seed"))
            with gr.Accordion("Advanced", open=False):
                steps = gr.Slider(value=0, step=1, label="Steps (0 = model default)", **bounds("steps"))
                guidance = gr.Number(value=-1, label="Guidance (-1 = model default)", **bounds("guidance"))
            price = gr.Markdown("", elem_id="custom-price")
            with gr.Row():
                generate = gr.Button("Generate takes", variant="primary", elem_id="custom-generate")
                stop = stop_button("custom-stop")
    notice = gr.Markdown("", elem_id="custom-notice")
    saving = build_takes_and_save(services, session, "custom")

    style.input(lambda s: presets.styles[s].models[0], [style], [model], api_visibility="private")
    def show_price(model_id: str, count: int, token: str, profile: gr.OAuthProfile | None = None):
        return takes_price(services, model_id, count, token, profile)

    gr.on([model.change, takes.change, session.bar.change], show_price, [model, takes, session.token], [price], api_visibility="private")
    session.loaded.then(show_price, [model, takes, session.token], [price], api_visibility="private")

    @user_errors
    def figure_custom(
        appearance: str,
        outfit: str = "",
        style: str = "photoreal",
        negative_prompt: str = "",
        model: str = "",
        aspect_ratio: str = "3:4",
        resolution: str = "1K",
        takes: int = 2,
        seed: int = -1,
        steps: int = 0,
        guidance: float = -1,
        token: str = "",
        idempotency_key: str = "",
        draft: dict | None = None,
        profile: gr.OAuthProfile | None = None,
        progress=gr.Progress(),
    ):
        """Custom creation: your own appearance and outfit text in a style register, with full settings. Returns 1-4
        takes and JSON with request_id, seeds and files; save one as a figure with /figure_save.

        Args:
            appearance: the figure's face, hair, eyes, build... (an adult).
            outfit: what the figure wears.
            style: the style register (photoreal, anime, ...).
            negative_prompt: added to the style's negative prompt.
            model: a text-to-image model id; "" takes the style's preferred model.
            aspect_ratio: 1:1, 16:9, 9:16, 4:3 or 3:4.
            resolution: 1K or 2K where the model offers it.
            takes: 1-4 images to pick the canonical one from; each costs the model's price.
            seed: -1 for random.
            steps: denoising steps; 0 takes the model's default.
            guidance: -1 takes the model's default.
            token: your session token from /session_start.
            idempotency_key: send the same key again to get the first result without being charged twice.
        """
        account = account_for(services, token, profile)
        progress(0, desc="Loading model")
        result = services.figures.custom_takes(
            account, appearance=appearance, outfit=outfit, style=style, negative_prompt=negative_prompt,
            model=model or None, takes=int(takes), seed=seed_or_random(seed),
            aspect_ratio=aspect_ratio, resolution=resolution, steps=int(steps or 0) or None,
            guidance=None if guidance is None or guidance < 0 else float(guidance), idempotency_key=idempotency_key or None,
            on_step=lambda done, total: progress((done, total), desc="Generating takes", unit="steps"),
        )
        return takes_outputs(services, result, draft, token, profile)

    wire_stop(services, session, stop, notice)
    outputs = [saving.gallery, gr.JSON(visible=False), saving.draft, saving.pick, notice, session.bar]
    ui_event(services, generate.click, figure_custom, {
        "appearance": appearance, "outfit": outfit, "style": style, "negative_prompt": negative, "model": model,
        "aspect_ratio": ratio, "resolution": tier, "takes": takes, "seed": seed, "steps": steps, "guidance": guidance,
        "token": session.token, "draft": saving.draft,
    }, outputs, api_name="figure_custom").then(show_price, [model, takes, session.token], [price], api_visibility="private")
    public(services, figure_custom, outputs, api_name="figure_custom", ui_state=("draft",), like={
        "style": style, "aspect_ratio": ratio, "resolution": tier,
    })
