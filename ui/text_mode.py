"""Images > Text mode: prompt, model, aspect ratio, tier, batch, seed -> a gallery of PNGs."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from services.accounts.identity import Account
from services.catalogue import ASPECT_RATIOS, IMAGE_TIERS, Task
from services.container import Services
from services.creation.image_presets import add_fragment, remove_fragment
from services.creation.text import TextToImageParams
from services.runs.params import MAX_COUNT

from .models import key_note, model_label as shared_label
from .api import bounds, public, ui_event
from .errors import user_errors
from .text import md
from .session import SessionUI, account_for, bar_text, optional_account, stop_button, wire_stop


@dataclass
class TextModeUI:
    """Text mode's inputs, so other tabs (History's "reuse prompt") can fill them."""

    prompt: gr.Textbox
    style: gr.Radio
    negative: gr.Textbox
    model: gr.Dropdown
    ratio: gr.Radio
    tier: gr.Radio
    count: gr.Slider
    seed: gr.Number
    steps: gr.Slider
    guidance: gr.Number


def model_label(services: Services, entry) -> str:
    return shared_label(services, entry, Task.TEXT_TO_IMAGE)


def note_text(services: Services, model_id: str | None) -> str:
    """The model's prompt guidance (registry `prompt_note`), shown by the prompt box when it is picked."""
    try:
        entry = services.catalogue.get(model_id) if model_id else None
    except Exception:  # noqa: BLE001 - an unknown id shows no note; the run refuses it with its own message
        return ""
    return f"**Prompting {md(entry.name)}:** {md(entry.prompt_note)}" if entry is not None and entry.prompt_note else ""


def default_model(services: Services, task: Task) -> str:
    return services.catalogue.entries(task, local=True)[0].id


def price_text(services: Services, entry, count: int, ratio: str, tier: str, account: Account | None = None) -> str:
    count = int(count or 1)
    if key_note(services, entry):
        return key_note(services, entry)
    if not services.catalogue.offers(entry, ratio, tier):
        return f"**Price:** {entry.name} does not offer {ratio} at {tier}."
    size = services.catalogue.size(entry, ratio, tier)
    quote = services.catalogue.price(entry, Task.TEXT_TO_IMAGE, tier, count)
    text = f"**Price:** {quote.text().replace(f'= {quote.total}', f'= **{quote.total}')}** · {size[0]}×{size[1]}"
    if account is not None:
        text += f" · you have {account.balance_text()}"
        if not services.catalogue.affordable(account, quote):
            text += " — **not enough**: lower the batch or resolution, or pick a cheaper model"
    return text


def build(services: Services, demo: gr.Blocks, session: SessionUI) -> TextModeUI:
    catalogue = services.catalogue
    choices = [(model_label(services, e), e.id) for e in catalogue.entries(Task.TEXT_TO_IMAGE)]
    first = catalogue.get(default_model(services, Task.TEXT_TO_IMAGE))
    limits = services.policy.limits

    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(
                label="Prompt",
                lines=3,
                max_length=limits.natural,
                placeholder="portrait of a red-haired explorer in a green field jacket, golden hour, detailed",
                value="portrait of a red-haired explorer in a green field jacket, golden hour",
                elem_id="text-prompt",
            )
            with gr.Accordion("Tags and presets — click to add to the prompt", open=False, elem_id="text-helpers"):
                chips = {}
                for category, tags in services.image_presets.tags.items():
                    chips[category] = gr.CheckboxGroup(tags, label=category.title(), elem_id=f"text-chips-{category}")
                with gr.Row():
                    libraries = {
                        library: gr.Dropdown(
                            [("—", "")] + services.image_presets.choices(library), value="", label=library.title(),
                            elem_id=f"text-preset-{library}",
                        )
                        for library in ("outfits", "actions", "scenes")
                    }
            premium = services.catalogue.mode("premium")
            style = gr.Radio(
                [(f"Natural description (up to {limits.natural:,} characters)", "natural"),
                 (f"{premium.label}: comma-separated tags (up to {limits.tags:,}), local models, batch up to {premium.max_batch}", "tags")],
                value="natural",
                label="Prompt style",
                elem_id="text-style",
            )
            negative = gr.Textbox(label="Negative prompt", value="", lines=1, placeholder="blurry, extra fingers", elem_id="text-negative")
            with gr.Row():
                model = gr.Dropdown(choices=choices, value=first.id, label="Model", elem_id="text-model", scale=3)
                count = gr.Slider(1, MAX_COUNT, value=1, step=1, label="Batch", elem_id="text-count")
            prompt_note = gr.Markdown(note_text(services, first.id), elem_id="text-prompt-note")
            with gr.Row():
                ratio = gr.Radio(list(ASPECT_RATIOS), value="1:1", label="Aspect ratio", elem_id="text-ratio")
                # Every image tier is a valid API value; the UI narrows the choices to the model's on load/change.
                tier = gr.Radio(list(IMAGE_TIERS), value="1K", label="Resolution", elem_id="text-tier")
            seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", **bounds("seed"), elem_id="text-seed")
            with gr.Accordion("Start from an image (optional)", open=False):
                # A File, not an Image: gradio's Image decodes uploads itself before any handler could check them
                # (a decompression bomb would be decoded); here only services.uploads decodes, with its limits.
                with gr.Row():
                    init_image = gr.File(
                        label="Start image (PNG, JPEG or WEBP, up to 10 MB)", file_types=[".png", ".jpg", ".jpeg", ".webp"],
                        type="filepath", height=140, elem_id="text-init-image",
                    )
                    init_preview = gr.Image(label="Checked start image", interactive=False, height=140, format="png", elem_id="text-init-preview")
                strength = gr.Slider(0.05, 1.0, value=first.defaults.strength, step=0.05, label="Change strength (low keeps more of the image)")
            with gr.Accordion("Reuse settings from a PNG", open=False):
                settings_png = gr.File(label="Drop a PNG made here (or by an A1111-style tool)", file_types=[".png"], type="filepath", height=100, elem_id="text-settings-png")
                settings_note = gr.Markdown("", elem_id="text-settings-note")
            with gr.Accordion("Advanced settings", open=False, elem_id="text-advanced"):
                steps = gr.Slider(value=0, step=1, label="Steps (0 = model default)", elem_id="text-steps", **bounds("steps"))
                guidance = gr.Number(value=-1, label="Guidance (-1 = model default)", **bounds("guidance"))
            price = gr.Markdown(price_text(services, first, 1, "1:1", "1K"), elem_id="text-price")
            with gr.Row():
                go = gr.Button("Generate", variant="primary", elem_id="text-generate")
                stop = stop_button("text-stop")
        with gr.Column(scale=4):
            notice = gr.Markdown("", elem_id="text-notice")
            gallery = gr.Gallery(label="Images", format="png", type="filepath", columns=2, height=520, elem_id="text-gallery")
            info = gr.JSON(label="Seeds and settings used", elem_id="text-info")

    def on_model(model_id: str, ratio_value: str, tier_value: str, count_value: int, token: str, profile: gr.OAuthProfile | None = None):
        entry = catalogue.get(model_id)
        ratios = catalogue.ratios(entry)
        ratio_value = ratio_value if ratio_value in ratios else ratios[0]
        tiers = catalogue.tiers(entry, ratio_value)
        tier_value = tier_value if tier_value in tiers else tiers[0]
        return (
            gr.update(choices=ratios, value=ratio_value),
            gr.update(choices=tiers, value=tier_value),
            price_text(services, entry, count_value, ratio_value, tier_value, optional_account(services, token, profile)),
        )

    def on_size(model_id: str, ratio_value: str, tier_value: str, count_value: int, token: str, profile: gr.OAuthProfile | None = None):
        entry = catalogue.get(model_id)
        tiers = catalogue.tiers(entry, ratio_value)
        tier_value = tier_value if tier_value in tiers else (tiers[0] if tiers else None)
        return gr.update(choices=tiers, value=tier_value), price_text(services, entry, count_value, ratio_value, tier_value, optional_account(services, token, profile))

    @user_errors
    def check_start_image(path: str | None):
        if not path:
            return None
        return services.text.check_upload(path)

    init_image.change(check_start_image, [init_image], [init_preview], api_visibility="private")

    def toggle_chip(current: str, chosen: list[str], before: list[str]):
        added = [t for t in chosen if t not in before]
        removed = [t for t in before if t not in chosen]
        for tag in added:
            current = add_fragment(current, tag)
        for tag in removed:
            current = remove_fragment(current, tag)
        return current, chosen

    for category, group in chips.items():
        previous = gr.State([])
        group.input(toggle_chip, [prompt, group, previous], [prompt, previous], api_visibility="private")

    def insert_preset(library: str):
        def insert(current: str, key: str):
            if not key:
                return current, ""
            return add_fragment(current, services.image_presets.fragment(library, key)), ""

        return insert

    for library, picker in libraries.items():
        picker.input(insert_preset(library), [prompt, picker], [prompt, picker], api_visibility="private")

    @user_errors
    def read_settings(path: str | None):
        if not path:
            return (gr.update(),) * 10
        found = services.text.settings_from_png(path)
        model_value = found["model"] or gr.update()
        note = f"Settings read from the PNG{'' if found['model'] else ' (its model is not in this registry; keeping yours)'}."
        return (found["prompt"], found["prompt_style"], found["negative_prompt"], model_value, found["aspect_ratio"],
                found["resolution"], found["seed"], found["steps"], found["guidance"], note)

    settings_png.upload(read_settings, [settings_png], [prompt, style, negative, model, ratio, tier, seed, steps, guidance, settings_note],
                        api_name="read_png_settings", api_visibility="private")

    model_inputs = [model, ratio, tier, count, session.token]
    session.loaded.then(on_model, model_inputs, [ratio, tier, price], api_visibility="private")
    model.change(on_model, model_inputs, [ratio, tier, price], api_name="text_model_changed", api_visibility="private")
    model.change(lambda model_id: note_text(services, model_id), [model], [prompt_note], api_visibility="private")
    gr.on(
        [ratio.change, tier.change, count.change, session.bar.change],  # the bar: the balance changed (one source)
        on_size,
        [model, ratio, tier, count, session.token],
        [tier, price],
        api_name="text_size_changed",
        api_visibility="private",
    )

    @user_errors
    def text_to_image(
        prompt: str,
        model: str,
        negative_prompt: str = "",
        aspect_ratio: str = "1:1",
        resolution: str = "1K",
        count: int = 1,
        seed: int = -1,
        steps: int = 0,
        guidance: float = -1,
        prompt_style: str = "natural",
        init_image: str | None = None,
        strength: float | None = None,
        token: str = "",
        idempotency_key: str = "",
        profile: gr.OAuthProfile | None = None,
        progress=gr.Progress(),
    ):
        """Generate images from text (or from a start image), paid from the session's credits. The price (see /quote)
        is reserved first and refunded if anything fails. Returns the PNG files, JSON with the request id, credits
        charged, seeds and parameters, a notice, and the balance line.

        Args:
            prompt: what the image shows (natural: up to 2,000 characters; tags: up to 1,000).
            model: a text-to-image model id from /models.
            negative_prompt: what to avoid (models that take one).
            aspect_ratio: 1:1, 16:9, 9:16, 4:3 or 3:4 (the model's ratios).
            resolution: the tier: 1K, 2K or 4K where the model offers it.
            count: images in the batch, 1-8; each costs the price.
            seed: -1 for random; the first image's seed, the next ones count up.
            steps: denoising steps; 0 takes the model's default.
            guidance: -1 takes the model's default.
            prompt_style: "natural" or "tags".
            init_image: an uploaded start image (PNG, JPEG or WEBP) for image-to-image.
            strength: with init_image, how far to move away from it (0-1]; empty or -1: the model's default.
            token: your session token from /session_start.
            idempotency_key: send the same key again to get the first result without being charged twice.
        """
        account = account_for(services, token, profile)
        progress(0, desc="Loading model")

        def on_step(done: int, total: int) -> None:
            progress((done, total), desc="Denoising", unit="steps")

        params = TextToImageParams(
            prompt=prompt,
            model=model,
            negative_prompt=negative_prompt,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            count=int(count),
            seed=None if seed is None else int(seed),
            steps=int(steps or 0),
            guidance=None if guidance is None else float(guidance),
            prompt_style=prompt_style or "natural",
            init_image=init_image or None,
            strength=None if strength is None or strength < 0 else float(strength),
        )
        output = services.text.text_to_image(account, params, idempotency_key=idempotency_key or None, on_step=on_step)
        after = services.identity.account(account.id)
        lines = []
        if output.preview:
            lines.append(f"⚠️ **{output.notice}** — real weights for this model are not on this machine.")
        charged = f"Charged {output.charged} credit{'s' if output.charged != 1 else ''}"
        if output.replayed:
            charged = "Same request as before: the earlier result, not charged again"
        if output.blocked:
            charged += f"; {output.blocked} image(s) blocked by the safety check were refunded"
        lines.append(f"{charged} · balance now **{after.balance_text()}**.")
        info = dict(output.info(), balance=after.balance)
        return [str(p) for p in output.files], info, "  \n".join(lines), bar_text(after)

    wire_stop(services, session, stop, notice)
    outputs = [gallery, info, notice, session.bar]
    ui_event(services, go.click, text_to_image, {
        "prompt": prompt, "model": model, "negative_prompt": negative, "aspect_ratio": ratio, "resolution": tier, "count": count,
        "seed": seed, "steps": steps, "guidance": guidance, "prompt_style": style, "init_image": init_image, "strength": strength,
        "token": session.token,
    }, outputs, api_name="text_to_image").then(on_size, [model, ratio, tier, count, session.token], [tier, price], api_visibility="private")
    public(services, text_to_image, outputs, api_name="text_to_image", like={"init_image": init_image,
        "model": model, "aspect_ratio": ratio, "resolution": tier, "prompt_style": style,
    })
    return TextModeUI(prompt, style, negative, model, ratio, tier, count, seed, steps, guidance)
