"""All Figures > a figure > LoRAs: pin LoRA library entries (presets/loras.toml) with a weight; Remix and Advanced
apply them on models of the LoRA's family, per request, without reloading the base."""
from __future__ import annotations

import gradio as gr

from services.container import Services

from .api import api, required
from .errors import user_errors
from .session import SessionUI, account_for


def choices(services: Services) -> list[tuple[str, str]]:
    out = []
    for entry in services.catalogue.loras():
        flags = " · non-commercial" if entry.licence.non_commercial else ""
        out.append((f"{entry.name} · {entry.family}{flags}", entry.id))
    return out


def build(services: Services, session: SessionUI, current_figure: gr.State) -> None:
    with gr.Accordion("LoRAs (a character or style LoRA pinned to this figure)", open=False, elem_id="loras-box"):
        picked = gr.Dropdown(choices(services), multiselect=True, label="LoRAs", elem_id="loras-pick")
        weight = gr.Slider(0.0, 2.0, value=0.8, step=0.05, label="Weight (each)", elem_id="loras-weight")
        pin = gr.Button("Pin to this figure", size="sm", elem_id="loras-pin")
        notice = gr.Markdown("", elem_id="loras-notice")

    @user_errors
    def figure_loras(token: str = "", figure_id: str = "", loras: list[dict] | None = None,
                     profile: gr.OAuthProfile | None = None) -> dict:
        """Pin LoRA library entries to one of your figures, each {"id": ..., "weight": 0-2}; [] unpins them all.
        Remix and Advanced apply them on models of the LoRA's family (SDXL, FLUX.1 Kontext), and record it.

        Args:
            token: your session token from /session_start.
            figure_id: one of your figures.
            loras: [{"id": a LoRA id from presets/loras.toml, "weight": 0-2}], up to the library's max_per_figure.
        """
        required(figure_id=figure_id)
        figure = services.figures.pin_loras(account_for(services, token, profile), figure_id, list(loras or []))
        return {"figure_id": figure.id, "loras": figure.settings.get("loras", [])}

    @user_errors
    def on_pin(figure_id, ids, value, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        figure = services.figures.pin_loras(account, figure_id, [{"id": i, "weight": float(value)} for i in ids or []])
        pinned = figure.settings.get("loras", [])
        return "Pinned: " + ", ".join(f"{p['id']} ({p['weight']:g})" for p in pinned) if pinned else "No LoRAs pinned."

    pin.click(on_pin, [current_figure, picked, weight, session.token], [notice], api_visibility="private")
    api(services, figure_loras, api_name="figure_loras")
