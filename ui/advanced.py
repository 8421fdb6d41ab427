"""Images > Advanced: a natural scene description of one of your figures at 2K or 4K (or of another visitor's
character whose creator enabled Advanced). The likeness is kept by the picked model's face-preservation path; no
presets (the rules are presets/plans.toml [modes.advanced])."""
from __future__ import annotations

import gradio as gr

from services.catalogue import ASPECT_RATIOS, Task
from services.container import Services
from services.errors import UserError

from .models import model_label
from .api import bounds, public, ui_event
from .errors import user_errors
from .figures_common import seed_or_random
from .remix import figure_picker, result
from .session import SessionUI, account_for, optional_account, stop_button, wire_stop
from .text_mode import note_text


def _models(services: Services) -> list[tuple[str, str]]:
    def how(entry) -> str:
        return "keeps the face via " + ("reference image" if entry.face_preservation == "reference" else "face adapter")

    return [(model_label(services, e, Task.REFERENCE if e.face_preservation == "reference" else Task.TEXT_TO_IMAGE, "image",
                         how(e)), e.id) for e in services.remix.advanced_models()]


def character_choices(services: Services, selected=None) -> list[tuple[str, str]]:
    """The pickers' characters open for Advanced (verified public ones; an unlisted one is typed by its id)."""
    listed = [(c["name"], c["id"]) for c in services.characters.advanced_characters()]
    known = {v for _, v in listed}
    extra = [(str(v), str(v)) for v in ([selected] if isinstance(selected, str) else selected or []) if v and v not in known]
    return listed + extra


def character_image(services: Services, character_id: str, token, profile=None) -> str | None:
    """A lent character's main image as the visitor may see it (a copy without metadata); None if it cannot be opened."""
    try:
        character = services.characters.get(optional_account(services, token, profile), character_id)
    except UserError:  # the Generate button says why in words; the preview just stays empty
        return None
    return str(character.image) if character.image else None


def price_text(services: Services, model_id: str, ratio: str, tier: str, account) -> str:
    try:
        entry = services.catalogue.get(model_id)
        task = Task.REFERENCE if entry.face_preservation == "reference" else Task.TEXT_TO_IMAGE
        quote = services.catalogue.quote(entry.id, task, ratio, tier, 1)
    except Exception as exc:  # noqa: BLE001 - the price line says what is wrong instead
        return f"**Price:** {exc}"
    return f"**Price:** {quote.text()}" + (f" · you have {account.balance_text()}" if account else "")


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab, current_figure: gr.State) -> None:
    mode = services.catalogue.mode("advanced")
    choices = _models(services)
    default = choices[0][1] if choices else None
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown(f"**{mode.label}**: describe a scene for one of your figures in plain sentences; its face, hair "
                        f"and build are kept. {' or '.join(mode.tiers)}, one image per request.")
            with gr.Row():
                figure = gr.Dropdown([], label="Figure", allow_custom_value=True, scale=3, elem_id="adv-figure")
                refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100)
            character = gr.Dropdown([("None: my figure", "")], value="", allow_custom_value=True, elem_id="adv-character",
                                    label="Or another visitor's character (its creator enabled Advanced; it replaces the figure)")
            description = gr.Textbox(label="Scene description", lines=4, max_length=services.policy.limit("natural"),
                                     elem_id="adv-description",
                                     value="She stands on a windswept cliff at golden hour, coat collar up, looking out to sea.")
            model = gr.Dropdown(choices, value=default, label="Model", elem_id="adv-model")
            note = gr.Markdown(note_text(services, default), elem_id="adv-prompt-note")
            with gr.Row():
                ratio = gr.Radio(list(ASPECT_RATIOS), value="3:4", label="Aspect ratio", elem_id="adv-ratio")
                tier = gr.Radio(list(mode.tiers), value=mode.tiers[0], label="Resolution", elem_id="adv-tier")
            likeness = gr.Slider(value=0.8, step=0.05, **bounds("likeness"), label="Likeness ↔ freedom (1 = closest to the figure)",
                                 elem_id="adv-likeness")
            with gr.Row():
                keep_style = gr.Checkbox(value=True, label="Keep the figure's style (untick to override it)", elem_id="adv-keep-style")
                seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", **bounds("seed"))
            price = gr.Markdown("", elem_id="adv-price")
            with gr.Row():
                go = gr.Button("Generate", variant="primary", elem_id="adv-generate")
                stop = stop_button("adv-stop")
        with gr.Column(scale=3):
            canonical = gr.Image(label="Canonical image", interactive=False, height=200, format="png")
            notice = gr.Markdown("", elem_id="adv-notice")
            gallery = gr.Gallery(label="Advanced image", columns=1, height=460, format="png", type="filepath", elem_id="adv-gallery")
            info = gr.JSON(label="Settings used", elem_id="adv-info")

    @user_errors
    def list_figures(selected, token, profile: gr.OAuthProfile | None = None):
        return figure_picker(services, selected, token, profile)

    @user_errors
    def list_characters(selected, figure_id, token, profile: gr.OAuthProfile | None = None):
        """The characters open for Advanced; the preview shows the picked one's main image, else the figure's."""
        choices = [("None: my figure", "")] + character_choices(services, selected)
        image = (character_image(services, selected, token, profile) if selected
                 else figure_picker(services, figure_id, token, profile)[1])
        return gr.Dropdown(choices=choices, value=selected or ""), image

    characters_io = ([character, figure, session.token], [character, canonical])
    gr.on([tab.select, refresh.click, current_figure.change], list_figures, [current_figure, session.token], [figure, canonical],
          api_visibility="private").then(list_characters, *characters_io, api_visibility="private")
    character.input(list_characters, *characters_io, api_visibility="private")

    def show_price(model_id, ratio_value, tier_value, token, profile: gr.OAuthProfile | None = None):
        return price_text(services, model_id, ratio_value, tier_value, optional_account(services, token, profile))

    price_inputs = [model, ratio, tier, session.token]
    gr.on([model.change, ratio.change, tier.change, tab.select, session.bar.change], show_price, price_inputs, [price], api_visibility="private")
    model.change(lambda model_id: note_text(services, model_id), [model], [note], api_visibility="private")

    @user_errors
    def advanced_image(
        figure_id: str = "",
        description: str = "",
        model: str = "",
        aspect_ratio: str = "3:4",
        resolution: str = "2K",
        likeness: float = 0.8,
        seed: int = -1,
        keep_style: bool = True,
        count: int = 1,
        token: str = "",
        idempotency_key: str = "",
        character_id: str = "",
        profile: gr.OAuthProfile | None = None,
        progress=gr.Progress(),
    ):
        """Advanced mode: one of your figures (or another visitor's character whose creator enabled Advanced) in a scene
        you describe in plain sentences, at 2K or 4K, keeping its likeness through the model's face-preservation path.
        Returns the PNG, JSON with settings and identity scores, a notice, and the balance line.

        Args:
            figure_id: one of your figures ("" with character_id).
            description: the scene in natural sentences (up to 2,000 characters); no presets.
            model: an Advanced model id (face-keeping, 2K/4K); "" takes the first (FLUX.2 [dev]).
            aspect_ratio: 1:1, 16:9, 9:16, 4:3 or 3:4.
            resolution: 2K or 4K (4K costs twice 2K; on local models it is 2K plus a 2x upscale).
            likeness: 0-1: 1 keeps closest to the figure.
            seed: -1 for random.
            keep_style: true applies the figure's style register; false overrides it (recorded in the metadata).
            count: images per request; Advanced makes 1 (presets/plans.toml [modes.advanced]).
            token: your session token from /session_start.
            idempotency_key: send the same key again to get the first result without being charged twice.
            character_id: another visitor's character whose creator enabled Advanced (a verified public one, or an unlisted one by its id); it replaces figure_id. Priced and run as Advanced on a figure; the result names the character, never its figure.
        """
        account = account_for(services, token, profile)
        progress(0, desc="Loading model")
        options = dict(description=description, model=model or default or "", aspect_ratio=aspect_ratio, resolution=resolution,
                       likeness=likeness, count=int(count), seed=seed_or_random(seed), keep_style=bool(keep_style),
                       idempotency_key=idempotency_key or None,
                       on_step=lambda done, total: progress((done, total), desc="Generating", unit="steps"))
        if character_id:
            output = services.characters.advanced_image(account, character_id=character_id, **options)
        else:
            output = services.remix.advanced_image(account, figure_id=figure_id, **options)
        return result(services, output, token, profile)

    wire_stop(services, session, stop, notice)
    outputs = [gallery, info, notice, session.bar]
    ui_event(services, go.click, advanced_image, {
        "figure_id": figure, "description": description, "model": model, "aspect_ratio": ratio, "resolution": tier,
        "likeness": likeness, "seed": seed, "keep_style": keep_style, "token": session.token, "character_id": character,
    }, outputs, api_name="advanced_image").then(show_price, price_inputs, [price], api_visibility="private")
    public(services, advanced_image, outputs, api_name="advanced_image", like={"aspect_ratio": ratio, "resolution": tier})
