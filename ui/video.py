"""Video: Figure to Video (figure + required Action, optional Background/Outfit, prompt for members) and
Image to Video (members only: one of your generated images + Action)."""
from __future__ import annotations

import gradio as gr

from services.catalogue import Task
from services.container import Services
from services.accounts.identity import Account

from .models import key_note, model_choices
from .api import bounds, public, ui_event
from .jobs import job_twin
from .errors import clicked, user_errors
from .figures_common import seed_or_random
from .text_mode import note_text
from .session import SessionUI, account_for, bar_text, member_how, optional_account, stop_button, wire_stop

RATIOS = ["16:9", "9:16", "1:1"]


def _model_choices(services: Services) -> list[tuple[str, str]]:
    return model_choices(services, services.video.models(), Task.IMAGE_TO_VIDEO)


def _price(services: Services, model: str, ratio: str, staged: bool, account: Account | None, quote_of=None) -> str:
    """The price line of a video mode; `quote_of(model, ratio, tier)` prices another task (Text to Video)."""
    entry = services.catalogue.get(model)
    if key_note(services, entry):
        return key_note(services, entry)
    tier = services.catalogue.default_tier(entry, ratio)
    if not tier:
        return f"**Price:** {entry.name} does not offer {ratio}."
    quote = quote_of(model, ratio, tier) if quote_of else services.video.quote(model, ratio, tier, staged)
    width, height = services.catalogue.size(entry, ratio, tier)
    frames, fps = entry.defaults.num_frames, entry.defaults.fps
    text = f"**Price:** {quote.text()} · {width}×{height}, {frames} frames at {fps} fps (~{frames / fps:.1f} s)"
    if account is not None:
        text += f" · you have {account.balance_text()}"
    return text


def _speech_inputs(services: Services, prefix: str):
    """The talking-avatar inputs: what the figure says and in which voice (read only by models that take a script)."""
    talking = services.video_presets.talking
    with gr.Accordion("Talking avatar: script and voice (for models that speak)", open=False):
        script = gr.Textbox(label=f"Script (up to {talking.script_max} characters)", max_length=talking.script_max, lines=2,
                            placeholder="Hi, I'm Mara. Welcome to the lighthouse.", elem_id=f"{prefix}-script")
        voice = gr.Dropdown(services.video.voice_choices(), value=next(iter(talking.voices)), label="Voice", elem_id=f"{prefix}-voice")
    return script, voice


VIDEO_RESULT = ("video", "settings", "notice", "balance")  # what _result returns, named for /job


def _result(services: Services, output, token, profile):
    after = account_for(services, token, profile)
    lines = []
    if output.preview:
        lines.append(f"⚠️ **{output.notice}** — real weights are not on this machine.")
    lines.append(f"Charged {output.charged} credits · balance now **{after.balance_text()}**.")
    return str(output.video), output.info(), "  \n".join(lines), bar_text(after)


def build(services: Services, demo: gr.Blocks, session: SessionUI, figure_tab: gr.Tab, image_tab: gr.Tab, current_figure: gr.State) -> None:
    presets = services.video_presets
    default_model = presets.defaults.figure_model

    with figure_tab:
        gr.Markdown("Animate one of your figures: it starts from the figure's canonical image, so the face stays the same.")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    # Choices are the session's figures (filled on open); any id is checked by the service.
                    figure = gr.Dropdown([], label="Figure", scale=3, allow_custom_value=True, elem_id="f2v-figure")
                    refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100)
                action = gr.Radio(presets.choices("actions"), value="wave", label="Action (required)", elem_id="f2v-action")
                with gr.Row():
                    background = gr.Dropdown([("None", "")] + presets.choices("backgrounds"), value="", label="Background (optional)", elem_id="f2v-background")
                    outfit = gr.Dropdown([("None", "")] + presets.choices("outfits"), value="", label="Outfit (optional)", elem_id="f2v-outfit")
                prompt = gr.Textbox(label="Extra prompt (members only)", max_length=services.policy.limit("natural"), placeholder="e.g. golden-hour light", elem_id="f2v-prompt")
                with gr.Row():
                    model = gr.Dropdown(_model_choices(services), value=default_model, label="Model", elem_id="f2v-model")
                    ratio = gr.Radio(RATIOS, value="16:9", label="Aspect ratio", elem_id="f2v-ratio")
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", **bounds("seed"))
                f2v_note = gr.Markdown(note_text(services, default_model), elem_id="f2v-prompt-note")
                keep_style = gr.Checkbox(value=True, label="Keep the figure's style (untick to override it)", elem_id="f2v-keep-style")
                script, voice = _speech_inputs(services, "f2v")
                price = gr.Markdown("", elem_id="f2v-price")
                with gr.Row():
                    go = gr.Button("Make video", variant="primary", elem_id="f2v-generate")
                    stop = stop_button("f2v-stop")
            with gr.Column(scale=3):
                canonical = gr.Image(label="Start image (canonical)", interactive=False, height=220, format="png")
                notice = gr.Markdown("", elem_id="f2v-notice")
                video = gr.Video(label="Video", format="mp4", autoplay=True, loop=True, elem_id="f2v-video")
                info = gr.JSON(label="Stages and settings", elem_id="f2v-info")

    @user_errors
    def list_figures(selected: str | None, token: str, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        figures = services.figures.list(account) if account else []
        choices = [(f.name, f.id) for f in figures]
        ids = [f.id for f in figures]
        value = selected if selected in ids else (ids[0] if ids else None)
        image = str(next(f.canonical_path for f in figures if f.id == value)) if value else None
        note = "" if figures else "No figures yet: create one in Figures › Quick first."
        return gr.Dropdown(choices=choices, value=value), image, note

    gr.on([refresh.click, figure_tab.select, current_figure.change], list_figures, [current_figure, session.token], [figure, canonical, notice], api_visibility="private")

    def figure_price(model_id, ratio_value, bg, wear, token, profile: gr.OAuthProfile | None = None):
        return _price(services, model_id, ratio_value, bool(bg or wear), optional_account(services, token, profile))

    price_inputs = [model, ratio, background, outfit, session.token]
    gr.on([model.change, ratio.change, background.change, outfit.change, figure_tab.select, session.bar.change], figure_price, price_inputs,
          [price], api_visibility="private")
    model.change(lambda model_id: note_text(services, model_id), [model], [f2v_note], api_visibility="private")

    @user_errors
    def figure_to_video(
        figure_id: str,
        action: str = "wave",
        background: str = "",
        outfit: str = "",
        prompt: str = "",
        model: str = "",
        aspect_ratio: str = "16:9",
        seed: int = -1,
        token: str = "",
        idempotency_key: str = "",
        script: str = "",
        voice: str = "",
        keep_style: bool = True,
        profile: gr.OAuthProfile | None = None,
        progress=gr.Progress(),
    ):
        """Animate a figure from its canonical image, so the face stays the same. Returns the MP4, JSON with stages
        and settings, a notice, and the balance line.

        Args:
            figure_id: one of your figures.
            action: an Action preset (what the figure does), e.g. wave, smile-nod, turn-around, dance.
            background: "" or a Background preset; with it (or an outfit) a start frame is made first, keeping the face.
            outfit: "" or an Outfit preset.
            prompt: extra prompt text (members only).
            model: an image-to-video model id from /models; "" takes the default (Wan 2.1 I2V).
            aspect_ratio: 16:9, 9:16 or 1:1.
            seed: -1 for random.
            token: your session token from /session_start.
            idempotency_key: send the same key again to get the first result without being charged twice.
            script: talking-avatar models only (members): what the figure says, SFW, up to the preset's length.
            voice: talking-avatar models only: a voice id from presets/video.toml [talking]; "" takes the first.
            keep_style: true (default) applies the figure's style register (its prompt fragments and negative prompt);
                false overrides it. The output's metadata records which.
        """
        account = account_for(services, token, profile)
        if not figure_id:
            raise gr.Error("Pick a figure first (create one in Figures › Quick).")
        progress(0, desc="Loading models")
        output = services.video.figure_to_video(
            account, figure_id, action, background=background or None, outfit=outfit or None, prompt=prompt,
            model=model or None, aspect_ratio=aspect_ratio, seed=seed_or_random(seed), idempotency_key=idempotency_key or None,
            on_step=lambda done, total: progress((done, total), desc="Generating", unit="steps"), script=script, voice=voice or None,
            keep_style=bool(keep_style),
        )
        return _result(services, output, token, profile)

    wire_stop(services, session, stop, notice)
    outputs = [video, info, notice, session.bar]
    ui_event(services, go.click, figure_to_video, {
        "figure_id": figure, "action": action, "background": background, "outfit": outfit, "prompt": prompt, "model": model,
        "aspect_ratio": ratio, "seed": seed, "token": session.token, "script": script, "voice": voice, "keep_style": keep_style,
    }, outputs, api_name="figure_to_video").then(figure_price, price_inputs, [price], api_visibility="private")
    with figure_tab:
        like = {"action": action, "background": background, "outfit": outfit, "aspect_ratio": ratio}
        public(services, figure_to_video, outputs, api_name="figure_to_video", like=like)
        job_twin(services, figure_to_video, api_name="figure_to_video", names=VIDEO_RESULT, like=like)

    with image_tab:
        gate = gr.Markdown("", elem_id="i2v-gate")
        with gr.Row():
            with gr.Column(scale=3):
                sources = gr.Gallery(fit_columns=False, label="Your images — click one to animate", columns=5, height=240,
                                     format="png", type="filepath", allow_preview=False, elem_id="i2v-sources")
                source_rows = gr.State([])
                picked = gr.State(None)
                i2v_action = gr.Radio(presets.choices("actions"), value="smile-nod", label="Action (required)", elem_id="i2v-action")
                i2v_prompt = gr.Textbox(label="Extra prompt", max_length=services.policy.limit("natural"), elem_id="i2v-prompt")
                i2v_script, i2v_voice = _speech_inputs(services, "i2v")
                with gr.Row():
                    i2v_model = gr.Dropdown(_model_choices(services), value=default_model, label="Model")
                    i2v_ratio = gr.Radio(RATIOS, value="16:9", label="Aspect ratio")
                    i2v_seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", **bounds("seed"))
                i2v_note = gr.Markdown(note_text(services, default_model), elem_id="i2v-prompt-note")
                i2v_price = gr.Markdown("")
                with gr.Row():
                    i2v_go = gr.Button("Make video", variant="primary", elem_id="i2v-generate")
                    i2v_stop = stop_button("i2v-stop")
            with gr.Column(scale=3):
                i2v_notice = gr.Markdown("", elem_id="i2v-notice")
                i2v_video = gr.Video(label="Video", format="mp4", autoplay=True, loop=True, elem_id="i2v-video")
                i2v_info = gr.JSON(label="Settings")

    @user_errors
    def list_sources(token: str, profile: gr.OAuthProfile | None = None):
        """Members only: a guest sees why and how to become one first, with the form disabled."""
        account = optional_account(services, token, profile)
        if account is None:
            return [], [], "Starting your session…", gr.update(), gr.update()
        member = account.can("image_to_video")
        message = "" if member else f"**Image to Video is for members.** {member_how(services)}. Guests can use Figure to Video."
        images = services.history.images(account.id)
        return ([(str(i.path), i.caption) for i in images], [{"request_id": i.request_id, "index": i.index} for i in images],
                message, gr.update(interactive=member), gr.update(interactive=member))

    gr.on([image_tab.select, session.bar.change], list_sources, [session.token], [sources, source_rows, gate, i2v_go, i2v_prompt],
          api_visibility="private")

    def on_source(rows: list[dict], evt: gr.SelectData):
        return clicked(rows, evt)

    def i2v_price_line(model_id, ratio_value, token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        if account is None or not account.can("image_to_video"):
            return ""  # no price for what the visitor cannot run
        return _price(services, model_id, ratio_value, False, account)

    sources.select(on_source, [source_rows], [picked], api_visibility="private")
    i2v_model.change(lambda model_id: note_text(services, model_id), [i2v_model], [i2v_note], api_visibility="private")
    gr.on([i2v_model.change, i2v_ratio.change, image_tab.select, session.bar.change], i2v_price_line,
          [i2v_model, i2v_ratio, session.token], [i2v_price], api_visibility="private")

    @user_errors
    def image_to_video(
        request_id: str,
        index: int = 0,
        action: str = "smile-nod",
        prompt: str = "",
        model: str = "",
        aspect_ratio: str = "16:9",
        seed: int = -1,
        token: str = "",
        idempotency_key: str = "",
        script: str = "",
        voice: str = "",
        profile: gr.OAuthProfile | None = None,
        progress=gr.Progress(),
    ):
        """Members only: animate one of your generated images. Returns the MP4, JSON with settings, a notice, and the
        balance line.

        Args:
            request_id: one of your generations (see /history).
            index: which of its images, from 0.
            action: an Action preset (what happens), e.g. smile-nod, wave.
            prompt: extra prompt text.
            model: an image-to-video model id from /models; "" takes the default (Wan 2.1 I2V).
            aspect_ratio: 16:9, 9:16 or 1:1.
            seed: -1 for random.
            token: your session token from /session_start.
            idempotency_key: send the same key again to get the first result without being charged twice.
            script: talking-avatar models only: what the figure says, SFW, up to the preset's length.
            voice: talking-avatar models only: a voice id from presets/video.toml [talking]; "" takes the first.
        """
        account = account_for(services, token, profile)
        if not request_id:
            raise gr.Error("Click the image to animate first (request_id: one of your generations from /history).")
        progress(0, desc="Loading model")
        output = services.video.image_to_video(
            account, request_id, int(index), action, prompt=prompt, model=model or None, aspect_ratio=aspect_ratio,
            seed=seed_or_random(seed), idempotency_key=idempotency_key or None,
            on_step=lambda done, total: progress((done, total), desc="Generating", unit="steps"), script=script, voice=voice or None,
        )
        return _result(services, output, token, profile)

    def picked_request(row):
        return (row or {}).get("request_id", ""), (row or {}).get("index", 0)

    with image_tab:  # what the picked image is, as API-visible inputs
        hidden_request = gr.Textbox(visible=False)
        hidden_index = gr.Number(visible=False, precision=0)
    picked.change(picked_request, [picked], [hidden_request, hidden_index], api_visibility="private")
    wire_stop(services, session, i2v_stop, i2v_notice)
    i2v_outputs = [i2v_video, i2v_info, i2v_notice, session.bar]
    ui_event(services, i2v_go.click, image_to_video, {
        "request_id": hidden_request, "index": hidden_index, "action": i2v_action, "prompt": i2v_prompt, "model": i2v_model,
        "aspect_ratio": i2v_ratio, "seed": i2v_seed, "token": session.token, "script": i2v_script, "voice": i2v_voice,
    }, i2v_outputs, api_name="image_to_video")
    with image_tab:
        like = {"action": i2v_action, "aspect_ratio": i2v_ratio}
        public(services, image_to_video, i2v_outputs, api_name="image_to_video", like=like)
        job_twin(services, image_to_video, api_name="image_to_video", names=VIDEO_RESULT, like=like)
