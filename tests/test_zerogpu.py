"""ZeroGPU: the duration a request borrows the GPU for follows the request (steps x outputs x megapixels x frames,
from the registry's per-entry figures), never above the platform's maximum; the decorator receives it on the real
run path (a stand-in `spaces` module records it); ZeroGPU's own errors refund and say what to do in plain words."""
from __future__ import annotations

import math
from dataclasses import replace

import gradio as gr
import pytest

import pipelines.runtime as runtime_module
from pipelines.registry import GpuTiming
from pipelines.runtime import ZEROGPU_MAX_S, gpu_duration
from pipelines.types import GenerationRequest
from services.creation.text import TextToImageParams


class StandInSpaces:
    """Like `spaces`: GPU(duration=f) wraps a function; each call first asks f(*args) for the seconds to borrow."""

    def __init__(self, fail: Exception | None = None):
        self.durations: list[int] = []
        self.fail = fail

    def GPU(self, duration):  # noqa: N802 - spaces' own name
        def decorate(fn):
            def run(*args, **kwargs):
                self.durations.append(duration(*args, **kwargs))
                if self.fail is not None:
                    raise self.fail
                return fn(*args, **kwargs)
            return run
        return decorate


def request(width, height, count=1, steps=30, frames=None):
    return GenerationRequest(prompt="x", width=width, height=height, count=count, steps=steps, num_frames=frames)


def test_the_duration_follows_the_request_and_is_capped(registry):
    timing = GpuTiming(overhead_s=5, step_s=0.001)
    assert timing.seconds(30, 1, 1024, 1024) == pytest.approx(5 + 0.001 * 30 * 1.048576)
    assert timing.seconds(30, 8, 2048, 2048) == pytest.approx(5 + 0.001 * 30 * 8 * 4.194304)
    assert timing.seconds(30, 1, 832, 480, frames=81) == pytest.approx(5 + 0.001 * 30 * 0.39936 * 81)
    for entry in registry:
        if entry.is_remote:
            continue
        if entry.is_chat:  # a reply borrows the GPU for its tokens: overhead + step_s per token of the reply's cap
            chat = replace(request(1024, 1024), messages=(("user", "hi"),), max_new_tokens=entry.chat.max_new_tokens)
            assert gpu_duration(entry, chat) == math.ceil(entry.gpu.overhead_s + entry.gpu.step_s * entry.chat.max_new_tokens)
            continue
        one = gpu_duration(entry, request(1024, 1024, steps=entry.defaults.steps))
        batch = gpu_duration(entry, request(2048, 2048, count=8, steps=entry.defaults.steps))
        assert 1 <= one < batch <= ZEROGPU_MAX_S, (entry.id, one, batch)
    sdxl = registry.get("sdxl-base")
    assert gpu_duration(sdxl, request(1024, 1024)) == math.ceil(sdxl.gpu.seconds(30, 1, 1024, 1024))
    assert gpu_duration(sdxl, request(2048, 2048, count=8)) == ZEROGPU_MAX_S  # capped, not the 5,000 s it computes
    from pipelines.runtime import INSTANTID_STEP_COST
    from pipelines.types import FaceConditioning

    kps = ((0.4, 0.4), (0.6, 0.4), (0.5, 0.5), (0.42, 0.6), (0.58, 0.6))
    instantid = replace(request(1024, 1024), face=FaceConditioning((0.0,) * 512, path="instantid", keypoints=kps))
    assert gpu_duration(sdxl, instantid) == math.ceil(sdxl.gpu.seconds(30 * INSTANTID_STEP_COST, 1, 1024, 1024))
    wan = registry.get("wan2.1-i2v-480p")
    assert gpu_duration(wan, request(832, 480, steps=30, frames=41)) < gpu_duration(wan, request(832, 480, steps=30, frames=81))


def test_the_decorator_receives_the_requests_duration(make_services, monkeypatch):
    services = make_services()
    account = services.identity.start(None, ip="10.9.0.1").account
    stand_in = StandInSpaces()
    monkeypatch.setattr(runtime_module, "_run_on_accelerator", runtime_module.on_accelerator(stand_in))
    services.text.text_to_image(account, TextToImageParams("a lighthouse", "sdxl-base", steps=3, count=2, seed=1))
    services.text.text_to_image(account, TextToImageParams("a lighthouse", "sdxl-base", steps=3, count=1, seed=1))
    entry = services.registry.get("sdxl-base")
    assert stand_in.durations == [math.ceil(entry.gpu.seconds(3, 2, 1024, 1024)), math.ceil(entry.gpu.seconds(3, 1, 1024, 1024))]
    assert stand_in.durations[0] > stand_in.durations[1]


@pytest.mark.parametrize("title, message, says", [
    ("ZeroGPU quota exceeded", "You have exceeded your free ZeroGPU quota (60s requested vs. 12s left). Try again in 0:04:00.",
     "Sign in with Hugging Face for a larger quota, or wait a while"),
    ("ZeroGPU illegal duration", "The requested GPU duration (300s) is larger than the maximum allowed",
     "needs more GPU time than ZeroGPU allows you in one go"),
    ("ZeroGPU worker error", "GPU task aborted", "The GPU stopped before this request finished"),
], ids=["quota", "duration", "aborted"])
def test_a_zerogpu_error_refunds_and_says_what_to_do(make_services, monkeypatch, title, message, says):
    services = make_services()
    account = services.identity.start(None, ip="10.9.0.2").account
    before = services.ledger.balance(account.id)
    monkeypatch.setattr(runtime_module, "_run_on_accelerator",
                        runtime_module.on_accelerator(StandInSpaces(fail=gr.Error(message, title=title))))
    with pytest.raises(Exception) as refused:
        services.text.text_to_image(account, TextToImageParams("a lighthouse", "sdxl-base", steps=2, seed=1))
    assert says in str(refused.value) and "Nothing was charged" in str(refused.value)
    assert services.ledger.balance(account.id) == before
    record = services.history.list(account.id, include_failed=True)[0]
    assert record.status == "failed" and record.charged == 0
