"""Video tab, Text to Video (members): a video from a prompt alone, on the registry's text-to-video models."""
from __future__ import annotations

import gradio as gr

from services.catalogue import Task
from services.container import Services

from .models import model_choices
from .api import bounds, public, ui_event
from .errors import user_errors
from .figures_common import seed_or_random
from .session import SessionUI, account_for, member_how, optional_account, stop_button, wire_stop
from .text_mode import note_text
from .jobs import job_twin
from .video import RATIOS, VIDEO_RESULT, _price, _result


def build(services: Services, session: SessionUI, tab: gr.Tab) -> None:
    models = services.video.text_models()
    default = models[0].id
    with tab:
        gate = gr.Markdown("", elem_id="t2v-gate")
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(label="Describe the video", lines=3, max_length=services.policy.limit("natural"),
                                    placeholder="a red kite climbing over a grey sea, slow pan", elem_id="t2v-prompt")
                with gr.Row():
                    model = gr.Dropdown(model_choices(services, models, Task.TEXT_TO_VIDEO), value=default,
                                        label="Model", elem_id="t2v-model")
                    ratio = gr.Radio(RATIOS, value="16:9", label="Aspect ratio", elem_id="t2v-ratio")
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", **bounds("seed"))
                note = gr.Markdown(note_text(services, default), elem_id="t2v-prompt-note")
                price = gr.Markdown("", elem_id="t2v-price")
                with gr.Row():
                    go = gr.Button("Make video", variant="primary", elem_id="t2v-generate")
                    stop = stop_button("t2v-stop")
            with gr.Column(scale=3):
                notice = gr.Markdown("", elem_id="t2v-notice")
                video = gr.Video(label="Video", format="mp4", autoplay=True, loop=True, elem_id="t2v-video")
                info = gr.JSON(label="Settings")

    def on_open(model_id, ratio_value, token, profile: gr.OAuthProfile | None = None):
        """Members only: a guest sees why and how to become one before typing, the form disabled and no price."""
        account = optional_account(services, token, profile)
        member = account is not None and account.can("video_prompt")
        message = "" if member else (f"**Text to Video is for members.** {member_how(services)}. Guests can use "
                                     "Figure to Video.")
        price_line = _price(services, model_id, ratio_value, False, account, services.video.text_quote) if member else ""
        return (message, price_line, note_text(services, model_id), gr.update(interactive=member),
                gr.update(interactive=member))

    gr.on([tab.select, model.change, ratio.change, session.bar.change], on_open, [model, ratio, session.token],
          [gate, price, note, go, prompt], api_visibility="private")

    @user_errors
    def text_to_video(prompt: str, model: str = "", aspect_ratio: str = "16:9", seed: int = -1, token: str = "",
                      idempotency_key: str = "", profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        """Members only: a video from a prompt alone. Returns the MP4, JSON with settings, a notice, and the balance line.

        Args:
            prompt: the video: subject, motion, camera move and light.
            model: a text-to-video model id from /models; "" takes the first one.
            aspect_ratio: 16:9, 9:16 or 1:1.
            seed: -1 for random.
            token: your session token from /session_start.
            idempotency_key: send the same key again to get the first result without being charged twice.
        """
        account = account_for(services, token, profile)
        progress(0, desc="Loading model")
        output = services.video.text_to_video(
            account, prompt, model=model or None, aspect_ratio=aspect_ratio, seed=seed_or_random(seed),
            idempotency_key=idempotency_key or None,
            on_step=lambda done, total: progress((done, total), desc="Generating", unit="steps"),
        )
        return _result(services, output, token, profile)

    wire_stop(services, session, stop, notice)
    outputs = [video, info, notice, session.bar]
    ui_event(services, go.click, text_to_video, {"prompt": prompt, "model": model, "aspect_ratio": ratio, "seed": seed,
                                                 "token": session.token}, outputs, api_name="text_to_video")
    with tab:
        public(services, text_to_video, outputs, api_name="text_to_video", like={"aspect_ratio": ratio})
        job_twin(services, text_to_video, api_name="text_to_video", names=VIDEO_RESULT, like={"aspect_ratio": ratio})
