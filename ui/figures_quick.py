"""Figures > Quick: pick archetype, face, hair, eyes/skin/body, feature, outfit and style, step by step;
see what each choice adds; review and edit the composed prompt; generate 1-4 takes; pick one; save."""
from __future__ import annotations

import gradio as gr

from services.container import Services
from services.runs.params import MAX_TAKES
from services.creation.figure_presets import OPTION_KINDS

from .api import bounds, overriding, public, ui_event, ui_inputs
from .errors import user_errors
from .figures_common import build_takes_and_save, figure_models, seed_or_random, takes_outputs, takes_price
from .session import SessionUI, account_for, stop_button, wire_stop

PICKERS = ("archetype", *OPTION_KINDS, "style")
STEP_LABELS = {
    "archetype": "Archetype", "face": "Face", "hair_colour": "Hair colour", "hair_length": "Hair length",
    "hair_style": "Hair style", "eyes": "Eyes", "skin": "Skin tone", "body": "Body type",
    "feature": "Distinctive feature", "outfit": "Outfit", "style": "Style register",
}
PART_LABELS = {
    "archetype": "Subject", "face": "Face", "hair": "Hair", "eyes": "Eyes", "skin": "Skin", "body": "Body",
    "feature": "Feature", "outfit": "Outfit", "cues": "Archetype cues", "style": "Style",
}


def composition_text(services: Services, choices: dict[str, str]) -> tuple[str, str]:
    composed = services.figure_presets.compose(choices)
    lines = [f"- **{PART_LABELS[step]}:** {text}" for step, text in composed.parts]
    return "#### What your choices add\n" + "\n".join(lines), composed.prompt


def build(services: Services, demo: gr.Blocks, session: SessionUI) -> dict[str, gr.components.Component]:
    presets = services.figure_presets
    start = presets.defaults_for("explorer")
    pickers: dict[str, gr.Radio] = {}
    gr.Markdown("Build a figure step by step. Specific choices beat adjectives; one style register keeps every later image consistent.")
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Walkthrough(selected=0, elem_id="quick-steps") as walk:
                steps = [
                    ("Archetype", ["archetype"]),
                    ("Face", ["face"]),
                    ("Hair", ["hair_colour", "hair_length", "hair_style"]),
                    ("Eyes, skin, body", ["eyes", "skin", "body"]),
                    ("Feature", ["feature"]),
                    ("Outfit", ["outfit"]),
                    ("Style", ["style"]),
                ]
                nav: list[tuple[gr.Button | None, gr.Button]] = []
                for number, (label, kinds) in enumerate(steps):
                    with gr.Step(label, id=number):
                        for kind in kinds:
                            pickers[kind] = gr.Radio(
                                presets.choices_for(kind), value=start[kind], label=STEP_LABELS[kind], elem_id=f"quick-{kind}"
                            )
                        with gr.Row():
                            back = gr.Button("Back", size="sm") if number else None
                            forward = gr.Button("Next", variant="primary", size="sm", elem_id=f"quick-next-{number}")
                        nav.append((back, forward))
                with gr.Step("Review", id=len(steps)):
                    prompt = gr.Textbox(label="Composed prompt (edit freely)", lines=5, max_length=services.policy.limit("natural"), elem_id="quick-prompt")
                    with gr.Row():
                        model = gr.Dropdown(figure_models(services), value=services.figures.default_model(start["style"]), label="Model", scale=3, elem_id="quick-model")
                        takes = gr.Slider(1, MAX_TAKES, value=2, step=1, label="Takes", elem_id="quick-takes-count")
                        seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", **bounds("seed"))
                    price = gr.Markdown("", elem_id="quick-price")
                    with gr.Row():
                        adjust = gr.Button("Adjust (back to the first step)", size="sm")
                        generate = gr.Button("Generate takes", variant="primary", elem_id="quick-generate")
                        regenerate = gr.Button("Regenerate (new seeds)", elem_id="quick-regenerate")
                        stop = stop_button("quick-stop")
        with gr.Column(scale=2):
            parts = gr.Markdown("", elem_id="quick-parts")
    notice = gr.Markdown("", elem_id="quick-notice")
    saving = build_takes_and_save(services, session, "quick")

    for number, (back, forward) in enumerate(nav):
        forward.click(lambda n=number: gr.Walkthrough(selected=n + 1), None, walk, api_visibility="private")
        if back is not None:
            back.click(lambda n=number: gr.Walkthrough(selected=n - 1), None, walk, api_visibility="private")
    adjust.click(lambda: gr.Walkthrough(selected=0), None, walk, api_visibility="private")

    picker_list = [pickers[k] for k in PICKERS]

    def on_choice(*values):
        return composition_text(services, dict(zip(PICKERS, values)))

    def on_archetype(archetype: str):
        defaults = presets.defaults_for(archetype)
        return [gr.update(value=defaults[k]) for k in PICKERS[1:]] + [presets.styles[defaults["style"]].models[0]]

    pickers["archetype"].input(on_archetype, [pickers["archetype"]], picker_list[1:] + [model], api_visibility="private")
    pickers["style"].input(lambda s: presets.styles[s].models[0], [pickers["style"]], [model], api_visibility="private")
    gr.on([p.change for p in picker_list], on_choice, picker_list, [parts, prompt], api_visibility="private")
    session.loaded.then(on_choice, picker_list, [parts, prompt], api_visibility="private")
    def show_price(model_id: str, count: int, token: str, profile: gr.OAuthProfile | None = None):
        return takes_price(services, model_id, count, token, profile)

    gr.on([model.change, takes.change, session.bar.change], show_price, [model, takes, session.token], [price], api_visibility="private")
    session.loaded.then(show_price, [model, takes, session.token], [price], api_visibility="private")

    @user_errors
    def figure_quick(
        archetype: str = "explorer",
        face: str = "",
        hair_colour: str = "",
        hair_length: str = "",
        hair_style: str = "",
        eyes: str = "",
        skin: str = "",
        body: str = "",
        feature: str = "",
        outfit: str = "",
        style: str = "",
        prompt: str = "",
        model: str = "",
        takes: int = 2,
        seed: int = -1,
        token: str = "",
        idempotency_key: str = "",
        draft: dict | None = None,
        profile: gr.OAuthProfile | None = None,
        progress=gr.Progress(),
    ):
        """Quick creation: picker choices -> composed prompt -> 1-4 takes. Returns the takes and JSON with request_id,
        seeds, files and the prompt; save one as a figure with /figure_save.

        Args:
            archetype: the starting archetype (presets/figures.toml), e.g. explorer, mentor, friend.
            face: a face option; "" takes the archetype's default (so do the other pickers).
            hair_colour: a hair colour option.
            hair_length: a hair length option.
            hair_style: a hair style option.
            eyes: an eye option.
            skin: a skin tone option.
            body: a body type option.
            feature: a distinctive feature option.
            outfit: an outfit option.
            style: the style register (photoreal, anime, ...); "" takes the archetype's.
            prompt: your edited prompt; "" composes it from the pickers.
            model: a text-to-image model id; "" takes the style's preferred model.
            takes: 1-4 images to pick the canonical one from; each costs the model's price.
            seed: -1 for random.
            token: your session token from /session_start.
            idempotency_key: send the same key again to get the first result without being charged twice.
        """
        account = account_for(services, token, profile)
        progress(0, desc="Loading model")
        choices = {"archetype": archetype, "face": face, "hair_colour": hair_colour, "hair_length": hair_length,
                   "hair_style": hair_style, "eyes": eyes, "skin": skin, "body": body, "feature": feature,
                   "outfit": outfit, "style": style}
        result = services.figures.quick_takes(
            account, choices, prompt=prompt or None, model=model or None, takes=int(takes),
            seed=seed_or_random(seed), idempotency_key=idempotency_key or None,
            on_step=lambda done, total: progress((done, total), desc="Generating takes", unit="steps"),
        )
        return takes_outputs(services, result, draft, token, profile)

    given = {**dict(zip(PICKERS, picker_list)), "prompt": prompt, "model": model, "takes": takes, "seed": seed,
             "token": session.token, "draft": saving.draft}
    wire_stop(services, session, stop, notice)
    outputs = [saving.gallery, gr.JSON(visible=False), saving.draft, saving.pick, notice, session.bar]
    ui_event(services, generate.click, figure_quick, given, outputs, api_name="figure_quick").then(
        show_price, [model, takes, session.token], [price], api_visibility="private"
    )
    public(services, figure_quick, outputs, api_name="figure_quick", ui_state=("draft",))

    # Regenerate: the same choices with new random seeds; earlier takes stay to pick from.
    regenerate.click(
        overriding(figure_quick, seed=-1), ui_inputs(figure_quick, given), outputs, api_visibility="private",
        concurrency_limit=services.settings.event_concurrency, concurrency_id="figure_quick",
    ).then(show_price, [model, takes, session.token], [price], api_visibility="private")
    return {"walk": walk, **pickers}
