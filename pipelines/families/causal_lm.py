"""Language models (chat): a transformers AutoModelForCausalLM with its tokenizer's chat template, as a family like
the image ones. The registry declares them with task "chat"; the runtime loads them through this family's loader
(not diffusers), resolves real weights or the tiny preview the same way, and runs `chat` under the same lock, Stop
and progress callback. A reply streams piece by piece through `request.stream`; sampling is seeded per request."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import torch

from ..family import Family, register_family
from ..tiny import causal_lm as tiny_causal_lm
from ..types import GenerationCancelled, GenerationRequest, GenerationResult, StepCallback, Task

# What a reply may not carry whatever the model emits: C0 control characters other than newline and tab.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class ChatModel:
    """A loaded language model: the model, its tokenizer (whose chat template renders the messages), and its device."""

    model: Any
    tokenizer: Any
    device: torch.device

    def render(self, messages) -> str:
        """The prompt text the model reads: the messages through the tokenizer's own chat template, with the
        assistant's turn opened. Roles stay roles: a user's or a reply's text is never spliced into another turn,
        because the template's control tokens written inside it are escaped first (`inert`)."""
        turns = [{"role": r, "content": c if r == "system" else self.inert(c)} for r, c in messages]
        return self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)

    def inert(self, text: str) -> str:
        """Text with every special token of the tokenizer (``<|im_start|>``, ``<|im_end|>``, ...) broken up, so that
        it tokenizes as plain characters and cannot open or close a turn."""
        for token in self._specials():
            if token in text:
                text = text.replace(token, token[0] + "\u200b" + token[1:])
        return text

    def _specials(self) -> list[str]:
        tokens = set(self.tokenizer.all_special_tokens) | {str(t) for t in self.tokenizer.get_added_vocab()}
        return sorted((t for t in tokens if len(t) > 1), key=len, reverse=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)


def load(location: str, kwargs: dict[str, Any], device: torch.device) -> ChatModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer_kwargs = {k: v for k, v in kwargs.items() if k in ("revision", "local_files_only")}
    tokenizer = AutoTokenizer.from_pretrained(location, **tokenizer_kwargs)
    if tokenizer.chat_template is None:
        raise TypeError(f"{location} has no chat template: a chat entry needs an instruction-tuned model")
    model = AutoModelForCausalLM.from_pretrained(location, **kwargs).to(device).eval()
    return ChatModel(model, tokenizer, device)


class _Streamer:
    """transformers' streamer protocol (put/end): decodes the new tokens as they come and hands each new piece of
    text to `request.stream`, and reports progress as tokens done of the reply's cap."""

    def __init__(self, tokenizer, on_text, on_step: StepCallback, cap: int):
        self.tokenizer, self.on_text, self.on_step, self.cap = tokenizer, on_text, on_step, cap
        self.ids: list[int] = []
        self.sent = ""
        self.prompt_seen = False

    def text(self) -> str:
        return _CONTROL.sub("", self.tokenizer.decode(self.ids, skip_special_tokens=True))

    def clean(self) -> str:
        return self.text().replace("\ufffd", "")

    def final(self) -> str:
        """The whole reply: without the replacement characters left by byte pieces that never formed a character."""
        return self.clean().strip()

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt itself
            self.prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        self.on_step(min(len(self.ids), self.cap), self.cap)
        self._emit()

    def end(self) -> None:
        self._emit()

    def _emit(self) -> None:
        """Hand over the text added since the last piece. Replacement characters (byte pieces of a character still to
        come, or that never form one) are never handed over, so the pieces always add up to the final reply."""
        text = self.clean()
        if self.on_text is not None and len(text) > len(self.sent) and text.startswith(self.sent):
            self.on_text(text[len(self.sent):])
            self.sent = text


class _StopOnCancel:
    """A stopping criterion: Stop and the deadline end generation at the next token."""

    def __init__(self, cancel: threading.Event | None):
        self.cancel = cancel

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        stop = self.cancel is not None and self.cancel.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


def chat(pipe: ChatModel, request: GenerationRequest, on_step: StepCallback, cancel: threading.Event | None) -> GenerationResult:
    from transformers import StoppingCriteriaList

    cap = int(request.max_new_tokens or 256)
    temperature = float(request.temperature if request.temperature is not None else 0.8)
    prompt = pipe.render(request.messages)
    inputs = pipe.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(pipe.device)
    streamer = _Streamer(pipe.tokenizer, request.stream, on_step, cap)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.95} if temperature > 0 else {"do_sample": False}
    devices = [pipe.device] if pipe.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.inference_mode():  # a seed per request, not the process's state
        torch.manual_seed(request.seed)
        pipe.model.generate(
            **inputs, max_new_tokens=cap, streamer=streamer, stopping_criteria=StoppingCriteriaList([_StopOnCancel(cancel)]),
            pad_token_id=pipe.tokenizer.pad_token_id, **sampling,
        )
    if cancel is not None and cancel.is_set():
        raise GenerationCancelled("cancelled")
    streamer.end()
    reply = streamer.final()
    parameters = {
        "prompt": request.prompt, "messages": len(request.messages), "prompt_tokens": int(inputs.input_ids.shape[1]),
        "reply_tokens": len(streamer.ids), "max_new_tokens": cap, "temperature": temperature, "seed": request.seed,
        "count": 1,
    }
    return GenerationResult(seeds=[request.seed], parameters=parameters, texts=[reply])


FAMILY = register_family(
    Family(
        name="causal-lm",
        pipeline_classes={Task.CHAT: "ChatModel"},
        runners={Task.CHAT: chat},
        tiny_builders={"qwen3-chat": tiny_causal_lm.build},
        loader=load,
        marker="config.json",
    )
)
