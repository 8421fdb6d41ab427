"""Images > Group: 2-3 of your figures in one scene through a multi-reference model (other visitors' characters whose
creators enabled Advanced may join them); priced per figure."""
from __future__ import annotations

import gradio as gr

from services.catalogue import ASPECT_RATIOS, Task
from services.container import Services

from .advanced import character_choices
from .models import model_choices
from .api import bounds, public, ui_event
from .errors import user_errors
from .figures_common import seed_or_random
from .remix import figure_choices, result
from .session import SessionUI, account_for, optional_account, stop_button, wire_stop


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab) -> None:
    models = model_choices(services, services.remix.group_models(), Task.MULTI_REFERENCE, "figure at 2K")
    tiers = services.catalogue.mode("advanced").tiers
    with gr.Row():
        with gr.Column(scale=3):
            figures = gr.Dropdown([], multiselect=True, max_choices=3, allow_custom_value=True, label="Figures (2 or 3)", elem_id="group-figures")
            characters = gr.Dropdown([], multiselect=True, max_choices=3, allow_custom_value=True, elem_id="group-characters",
                                     label="Other visitors' characters (their creators enabled Advanced; 2 or 3 in all, with your figures)")
            prompt = gr.Textbox(label="Scene", lines=3, max_length=services.policy.limit("natural"), elem_id="group-prompt",
                                value="the friends laughing together around a campfire at night")
            model = gr.Dropdown(models, value=models[0][1], label="Model", elem_id="group-model")
            with gr.Row():
                ratio = gr.Radio(list(ASPECT_RATIOS), value="16:9", label="Aspect ratio", elem_id="group-ratio")
                tier = gr.Radio(list(tiers), value=tiers[0], label="Resolution", elem_id="group-tier")
                seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", **bounds("seed"))
            keep_style = gr.Checkbox(value=True, label="Keep the first figure's style (untick to override it)", elem_id="group-keep-style")
            price = gr.Markdown("", elem_id="group-price")
            with gr.Row():
                go = gr.Button("Make group shot", variant="primary", elem_id="group-generate")
                stop = stop_button("group-stop")
        with gr.Column(scale=3):
            notice = gr.Markdown("", elem_id="group-notice")
            gallery = gr.Gallery(fit_columns=False, label="Group shot", columns=1, height=420, format="png", type="filepath", elem_id="group-gallery")
            info = gr.JSON(label="Settings used")

    @user_errors
    def list_figures(chosen, token, profile: gr.OAuthProfile | None = None):
        return gr.Dropdown(choices=figure_choices(services, token, profile)), gr.Dropdown(choices=character_choices(services, chosen))

    gr.on([tab.select], list_figures, [characters, session.token], [figures, characters], api_visibility="private")

    def show_price(model_id, chosen, lent, tier_value, token, profile: gr.OAuthProfile | None = None):
        n = max(2, len(chosen or []) + len(lent or []))
        quote = services.catalogue.price(services.catalogue.get(model_id), Task.MULTI_REFERENCE, tier_value, 1, n)
        account = optional_account(services, token, profile)
        return f"**Price:** {quote.text()}" + (f" · you have {account.balance_text()}" if account else "")

    gr.on([model.change, figures.change, characters.change, tier.change, tab.select, session.bar.change], show_price,
          [model, figures, characters, tier, session.token], [price], api_visibility="private")

    @user_errors
    def group_image(figure_ids: list[str], prompt: str = "", model: str = "", aspect_ratio: str = "16:9", seed: int = -1,
                    token: str = "", idempotency_key: str = "", keep_style: bool = True, resolution: str = "2K",
                    character_ids: list[str] | None = None, profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        """2-3 of your figures in one scene through a multi-reference model (other visitors' characters whose creators
        enabled Advanced may join them); the price is per figure. Returns the PNG, JSON with settings, a notice, and the
        balance line.

        Args:
            figure_ids: two or three of your figure ids (fewer with character_ids: 2 or 3 in all; [] for none).
            prompt: the scene.
            model: a multi-reference model id from /models; "" takes the first one.
            aspect_ratio: 1:1, 16:9, 9:16, 4:3 or 3:4.
            seed: -1 for random.
            token: your session token from /session_start.
            idempotency_key: send the same key again to get the first result without being charged twice.
            keep_style: true (default) applies the first figure's style register (its prompt fragments and negative prompt);
                false overrides it. The output's metadata records which.
            resolution: 2K or 4K (4K doubles the per-figure price).
            character_ids: other visitors' characters whose creators enabled Advanced (verified public ones, or unlisted ones by id), placed after your figures; each is priced as a figure, and the result names the character, never its figure.
        """
        account = account_for(services, token, profile)
        progress(0, desc="Loading model")
        options = dict(prompt=prompt, model=model or models[0][1], aspect_ratio=aspect_ratio, seed=seed_or_random(seed),
                       idempotency_key=idempotency_key or None, keep_style=bool(keep_style), resolution=resolution,
                       on_step=lambda done, total: progress((done, total), desc="Composing", unit="steps"))
        if character_ids:
            output = services.characters.group_image(account, figure_ids=list(figure_ids or []), character_ids=list(character_ids),
                                                     **options)
        else:
            output = services.remix.group_image(account, figure_ids=list(figure_ids or []), **options)
        return result(services, output, token, profile)

    wire_stop(services, session, stop, notice)
    outputs = [gallery, info, notice, session.bar]
    ui_event(services, go.click, group_image, {"figure_ids": figures, "prompt": prompt, "model": model, "aspect_ratio": ratio, "seed": seed,
                                     "token": session.token, "keep_style": keep_style, "resolution": tier,
                                     "character_ids": characters}, outputs,
             api_name="group_image")
    public(services, group_image, outputs, api_name="group_image", like={"aspect_ratio": ratio})
