"""Progress events are throttled (ui/api.py ThrottledProgress, issue 32): a fast model's every step would be an event
on the request thread and over the wire; the first update, each new phase and the last step always go."""
from __future__ import annotations

import gradio as gr

from ui.api import PROGRESS_PER_SECOND, ThrottledProgress, validated


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, progress, desc=None, total=None, unit="steps", **kwargs):
        self.calls.append((progress, desc))


def test_steps_inside_one_interval_send_the_first_the_new_phase_and_the_last():
    clock = [0.0]
    inner = Recorder()
    progress = ThrottledProgress(inner, per_second=10, clock=lambda: clock[0])
    progress(0, desc="Loading model")
    for done in range(1, 31):
        clock[0] += 0.001  # 30 steps in 30 ms
        progress((done, 30), desc="Denoising", unit="steps")
    assert inner.calls == [(0, "Loading model"), ((1, 30), "Denoising"), ((30, 30), "Denoising")]


def test_a_slow_model_sends_every_step():
    clock = [0.0]
    inner = Recorder()
    progress = ThrottledProgress(inner, per_second=PROGRESS_PER_SECOND, clock=lambda: clock[0])
    for done in range(1, 6):
        clock[0] += 1.01 / PROGRESS_PER_SECOND  # a step every interval
        progress((done, 5), desc="Denoising")
    assert [p for p, _ in inner.calls] == [(d, 5) for d in range(1, 6)]


def test_validated_handlers_get_the_throttled_tracker():
    seen = []

    def handler(prompt: str = "", progress=gr.Progress()):
        seen.append(progress)
        return prompt

    assert validated(handler)("a red door", gr.Progress()) == "a red door"
    assert isinstance(seen[0], ThrottledProgress)
    validated(handler)("a red door")  # called without a tracker (tests, internal calls): the default, untouched
    assert isinstance(seen[1], gr.Progress)
