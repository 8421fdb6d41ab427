"""Compare: one prompt and seed through 2-4 models, images side by side with time and price."""
from __future__ import annotations

import gradio as gr

from services.catalogue import ASPECT_RATIOS, IMAGE_TIERS
from services.creation.compare import MAX_MODELS, CompareParams
from services.container import Services
from services.errors import UserError

from .api import bounds, public, ui_event
from .errors import user_errors
from .text import md
from .session import SessionUI, account_for, bar_text, optional_account, stop_button, wire_stop
from .remix import score_label, figure_choices
from .text_mode import model_label


def identity_cell(value) -> str:
    """The table's identity column: the score against the picked figure's face, or why there is none."""
    return "—" if value is None else score_label(value)

TABLE_HEADERS = ["model", "seconds", "credits", "steps", "identity", "result"]


def default_models(services: Services) -> list[str]:
    """Two models of different families, so the first click compares something."""
    picked, families = [], set()
    for model_id in services.compare.choices():
        family = services.catalogue.get(model_id).family
        if family not in families:
            picked.append(model_id)
            families.add(family)
        if len(picked) == 2:
            break
    return picked


def price_text(services: Services, models: list[str], ratio: str, tier: str, account=None) -> str:
    try:
        quotes = services.compare.quote(models or [], ratio, tier)
    except UserError as exc:
        return f"**Price:** — {exc}"
    total = sum(q.total for q in quotes)
    parts = " + ".join(f"{services.catalogue.get(q.model).name} {q.total}" for q in quotes)
    text = f"**Price:** {parts} = **{total} credits** · one image per model, same seed"
    if account is not None:
        text += f" · you have {account.balance_text()}"
        if not account.unlimited and account.balance < total:
            text += " — **not enough**: pick fewer or cheaper models, or a lower resolution"
    return text


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab | None = None) -> None:
    choices = [(model_label(services, services.catalogue.get(m)), m) for m in services.compare.choices()]
    first = default_models(services)
    gr.Markdown(
        f"Run one prompt with one seed through 2 to {MAX_MODELS} models. Each model uses its own default steps and "
        "guidance; each is charged as its own request, and one that fails is refunded without stopping the others.",
        elem_id="compare-intro",
    )
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(
                label="Prompt", lines=3, max_length=services.policy.limit("natural"), elem_id="compare-prompt",
                value="portrait of a red-haired explorer in a green field jacket, golden hour",
            )
            models = gr.CheckboxGroup(choices, value=first, label=f"Models (2 to {MAX_MODELS})", elem_id="compare-models")
            with gr.Row():
                ratio = gr.Radio(list(ASPECT_RATIOS), value="1:1", label="Aspect ratio", elem_id="compare-ratio")
                tier = gr.Radio(list(IMAGE_TIERS), value="1K", label="Resolution", elem_id="compare-tier")
            seed = gr.Number(value=42, precision=0, label="Seed (the same for every model; -1 = random)", **bounds("seed"), elem_id="compare-seed")
            figure = gr.Dropdown([("none", "")], value="", label="Score likeness against a figure (optional)",
                                 info="Each image gets an identity score: the cosine to the figure's canonical face.",
                                 elem_id="compare-figure")
            price = gr.Markdown(price_text(services, first, "1:1", "1K"), elem_id="compare-price")
            with gr.Row():
                go = gr.Button("Compare", variant="primary", elem_id="compare-run")
                stop = stop_button("compare-stop")
        with gr.Column(scale=3):
            notice = gr.Markdown("", elem_id="compare-notice")
            gallery = gr.Gallery(label="Side by side", format="png", type="filepath", columns=2, height=760,
                                 elem_id="compare-gallery")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="Per model", interactive=False, elem_id="compare-table")

    def on_change(chosen: list[str], ratio_value: str, tier_value: str, token: str, profile: gr.OAuthProfile | None = None):
        return price_text(services, chosen, ratio_value, tier_value, optional_account(services, token, profile))

    def list_figures(selected, token, profile: gr.OAuthProfile | None = None):
        options = [("none", ""), *figure_choices(services, token, profile)]
        return gr.Dropdown(choices=options, value=selected if selected in {v for _, v in options} else "")

    if tab is not None:
        tab.select(list_figures, [figure, session.token], [figure], api_visibility="private")

    change_inputs = [models, ratio, tier, session.token]
    session.loaded.then(on_change, change_inputs, [price], api_visibility="private")
    gr.on([models.change, ratio.change, tier.change, session.bar.change], on_change, change_inputs, [price],
          api_name="compare_price", api_visibility="private")

    @user_errors
    def compare(
        prompt: str,
        models: list[str],
        aspect_ratio: str = "1:1",
        resolution: str = "1K",
        seed: int = 42,
        token: str = "",
        figure_id: str = "",
        profile: gr.OAuthProfile | None = None,
        progress=gr.Progress(),
    ):
        """Run one prompt with one seed through 2-4 text-to-image models, one image each. All checks (models, size,
        prompt, balance for the whole set) run before any credit is reserved; each model is then its own paid request.
        Returns the images with captions, a table (model, seconds, credits, steps, identity, result), a notice and the
        balance line.

        Args:
            prompt: the prompt every model gets.
            models: 2-4 different local text-to-image model ids from /models.
            aspect_ratio: 1:1, 16:9, 9:16, 4:3 or 3:4 (every model must offer it).
            resolution: 1K, 2K or 4K (every model must offer it).
            seed: the seed every model uses; -1 picks one random seed for all.
            token: your session token from /session_start.
            figure_id: one of your figures, or "" for none: every image is then scored against its canonical face
                (the identity column, and identity_score in each PNG).
        """
        account = account_for(services, token, profile)
        stage = {"name": ""}

        def on_model(i: int, n: int, name: str) -> None:
            stage["name"] = f"{i + 1} of {n}: {name}"
            progress(i / n, desc=f"Model {stage['name']} — loading")

        def on_step(done: int, total: int) -> None:
            progress((done, total), desc=f"Model {stage['name']} — denoising", unit="steps")

        params = CompareParams(
            prompt=prompt, models=tuple(models or ()), aspect_ratio=aspect_ratio, resolution=resolution,
            seed=None if seed is None else int(seed), figure_id=figure_id or None,
        )
        output = services.compare.compare(account, params, on_model=on_model, on_step=on_step)
        after = services.identity.account(account.id)
        images, rows = [], []
        for row in output.rows:
            for path in row.files:
                images.append((str(path), f"{row.name} · {row.seconds:.1f} s · {row.charged} credit{'s' if row.charged != 1 else ''}"))
            rows.append([row.name, round(row.seconds, 2), row.charged, row.steps, identity_cell(row.identity),
                         row.error or ("offline preview" if row.preview else "ok")])
        lines = []
        if any(r.preview for r in output.rows):
            lines.append("⚠️ **Offline preview**: real weights are not on this machine, so these images come from tiny "
                         "random stand-in models; times and prices are real, the pictures are noise.")
        failed = [r for r in output.rows if r.error]
        if failed:
            lines.append("Not shown: " + "; ".join(f"{md(r.name)}: {md(r.error)}" for r in failed) + ".")
        lines.append(f"Seed {output.seed} · charged {output.charged} of the {output.quoted} credits quoted · "
                     f"balance now **{after.balance_text()}**. Times include loading a model the first time it runs.")
        return images, rows, "  \n".join(lines), bar_text(after)

    wire_stop(services, session, stop, notice)
    outputs = [gallery, table, notice, session.bar]
    ui_event(services, go.click, compare, {"prompt": prompt, "models": models, "aspect_ratio": ratio, "resolution": tier, "seed": seed,
                                 "token": session.token, "figure_id": figure}, outputs, api_name="compare").then(on_change, change_inputs, [price], api_visibility="private")
    public(services, compare, outputs, api_name="compare", like={"aspect_ratio": ratio, "resolution": tier})
