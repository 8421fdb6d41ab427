"""Tabs whose features are still being built: each says plainly what will be there."""
from __future__ import annotations

import gradio as gr

PLANNED = {
    "characters": "Characters built on figures, exportable as Character Card PNGs.",
}


def placeholder(key: str) -> gr.Markdown:
    return gr.Markdown(f"**Not available yet.** {PLANNED[key]}", elem_id=f"planned-{key}")
