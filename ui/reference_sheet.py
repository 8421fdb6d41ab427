"""All Figures > a figure > Advanced reference: full-body, front-facing options made from the canonical image; the
visitor picks one, and Advanced, Group and Figure-to-Video use it (presets/plans.toml [reference_sheets])."""
from __future__ import annotations

import gradio as gr

from services.container import Services

from .api import api, bounds, public, required, ui_event
from .errors import user_errors
from .figures_common import seed_or_random
from .remix import result
from .session import SessionUI, account_for, optional_account


def build(services: Services, session: SessionUI, current_figure: gr.State) -> None:
    with gr.Accordion("Advanced reference (full body, front-facing)", open=False, elem_id="sheet-box"):
        gr.Markdown("Make full-body options from the canonical image and pick one: Advanced, Group and Figure to Video "
                    "then start from it. Remix keeps the canonical image.")
        price = gr.Markdown("", elem_id="sheet-price")
        with gr.Row():
            seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", **bounds("seed"))
            keep_style = gr.Checkbox(value=True, label="Keep the figure's style", elem_id="sheet-keep-style")
            make = gr.Button("Make reference options", variant="primary", elem_id="sheet-generate")
        options = gr.Gallery(label="Options — click one to use it", columns=4, height=260, format="png", type="filepath",
                             allow_preview=False, elem_id="sheet-options")
        notice = gr.Markdown("", elem_id="sheet-notice")
        info = gr.JSON(visible=False)
        picked = gr.Markdown("", elem_id="sheet-picked")

    def show_price(figure_id, token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        if not (figure_id and account):
            return ""
        try:
            quote = services.sheets.quote(account, figure_id)
        except Exception as exc:  # noqa: BLE001 - the line says what is wrong instead
            return f"**Price:** {exc}"
        return f"**Price:** {quote.text()} · you have {account.balance_text()}"

    gr.on([current_figure.change, session.bar.change], show_price, [current_figure, session.token], [price], api_visibility="private")

    @user_errors
    def reference_sheet(figure_id: str, token: str = "", seed: int = -1, keep_style: bool = True, idempotency_key: str = "",
                        profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        """Make a figure's Advanced reference options (full body, front-facing) from its canonical image; pick one with
        /reference_sheet_pick. The first sheet costs the model's image price, each later one twice that. Returns the
        PNGs, JSON with settings, a notice, and the balance line.

        Args:
            figure_id: one of your figures.
            token: your session token from /session_start.
            seed: -1 for random.
            keep_style: true applies the figure's style register.
            idempotency_key: send the same key again to get the first result without being charged twice.
        """
        account = account_for(services, token, profile)
        required(figure_id=figure_id)
        progress(0, desc="Loading model")
        output = services.sheets.generate(account, figure_id, seed=seed_or_random(seed), keep_style=bool(keep_style),
                                          idempotency_key=idempotency_key or None,
                                          on_step=lambda done, total: progress((done, total), desc="Drawing options", unit="steps"))
        return result(services, output, token, profile)

    outputs = [options, info, notice, session.bar]
    ui_event(services, make.click, reference_sheet, {"figure_id": current_figure, "token": session.token, "seed": seed,
                                                     "keep_style": keep_style}, outputs,
             api_name="reference_sheet").then(show_price, [current_figure, session.token], [price], api_visibility="private")
    public(services, reference_sheet, outputs, api_name="reference_sheet")

    @user_errors
    def reference_sheet_pick(token: str = "", figure_id: str = "", request_id: str = "", index: int = 0,
                             profile: gr.OAuthProfile | None = None) -> dict:
        """Make one option of a figure's reference sheet its Advanced reference.

        Args:
            token: your session token from /session_start.
            figure_id: one of your figures.
            request_id: the request id /reference_sheet returned.
            index: which option, from 0.
        """
        required(figure_id=figure_id, request_id=request_id)
        return services.sheets.pick(account_for(services, token, profile), figure_id, request_id, int(index))

    @user_errors
    def on_pick(figure_id, sheet_info, token, evt: gr.SelectData, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        services.sheets.pick(account, figure_id, (sheet_info or {}).get("request_id", ""), evt.index)
        return f"Option {evt.index + 1} is now this figure's Advanced reference."

    options.select(on_pick, [current_figure, info, session.token], [picked], api_visibility="private")
    api(services, reference_sheet_pick, api_name="reference_sheet_pick")
