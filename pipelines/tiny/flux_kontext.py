"""Tiny random FLUX.1 Kontext pipeline: FLUX.1-dev's components saved as a FluxKontextPipeline.

diffusers' tests/pipelines/flux/test_pipeline_flux_kontext.py uses the same dummy components as FLUX.1;
Kontext-dev is guidance-distilled and ships FLUX.1-dev's dynamic-shift scheduler config.
"""
from __future__ import annotations

from pathlib import Path

from .flux import dev_scheduler, flux_components


def build(out_dir: Path) -> None:
    from diffusers import FluxKontextPipeline

    FluxKontextPipeline(scheduler=dev_scheduler(), **flux_components(guidance_embeds=True)).save_pretrained(out_dir)
