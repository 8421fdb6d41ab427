"""Which transport runs a remote entry: huggingface_hub's InferenceClient for Inference Providers names, or one of the
HTTP vendors declared as data in presets/providers.toml (base URL, key setting, request and response mapping, and for
language models an OpenAI-compatible chat API)."""
from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..types import Task

DEFAULT_PROVIDERS = Path(__file__).resolve().parents[2] / "presets" / "providers.toml"

# The tasks InferenceClient has a call for (an edit or a reference is image_to_image).
CLIENT_TASKS = {
    Task.TEXT_TO_IMAGE: "text_to_image",
    Task.EDIT: "image_to_image",
    Task.REFERENCE: "image_to_image",
    Task.IMAGE_TO_IMAGE: "image_to_image",
    Task.IMAGE_TO_VIDEO: "image_to_video",
    Task.TEXT_TO_VIDEO: "text_to_video",
    Task.CHAT: "chat_completion",  # streamed (pipelines/remote/chat.py)
}
# The Hub's name for each of those calls (the provider mapping's `task`, and huggingface_hub's provider helpers' key).
HUB_TASKS = {
    Task.TEXT_TO_IMAGE: "text-to-image",
    Task.EDIT: "image-to-image",
    Task.REFERENCE: "image-to-image",
    Task.IMAGE_TO_IMAGE: "image-to-image",
    Task.IMAGE_TO_VIDEO: "image-to-video",
    Task.TEXT_TO_VIDEO: "text-to-video",
    Task.CHAT: "conversational",
}


class ProvidersError(ValueError):
    """presets/providers.toml is malformed; the message names the vendor and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Queue(_Strict):
    poll: str  # path in the submit answer to the URL that is polled
    status: str  # path in the poll answer to the job's status
    done: tuple[str, ...]
    failed: tuple[str, ...] = ()
    error: str | None = None  # path in the poll answer to a failed job's message
    result: str | None = None  # path in the submit answer to the URL fetched when done (else the poll answer holds it)
    cancel: str | None = None  # path in the submit answer to the URL a PUT cancels
    poll_s: float = Field(default=0.5, gt=0, le=30)


class Output(_Strict):
    image: str | None = None
    video: str | None = None
    kind: Literal["url", "base64"] = "url"


class ChatApi(_Strict):
    """A vendor's chat completions in OpenAI's shape: `messages` in, Server-Sent Events out (`data: {chunk}` lines
    whose choices.0.delta.content are the reply's pieces, then `data: [DONE]`). The request body is the vendor's
    body.chat template when it gives one, else OpenAI's (model, messages, max_tokens, temperature, seed)."""

    api: Literal["openai"] = "openai"
    submit: str = "{base_url}/chat/completions"


class HttpProvider(_Strict):
    id: str
    label: str
    base_url: str
    key_env: str
    auth_header: str
    auth_value: str = "{key}"
    submit: str | None = None  # image and video requests (a chat-only vendor has none)
    output: Output | None = None
    queue: Queue | None = None
    chat: ChatApi | None = None  # language models (task "chat")
    models: dict[str, str] = {}  # an entry's remote_model (e.g. a hub id) -> the vendor's own name for it
    body: dict[Task, dict[str, Any]] = {}

    @model_validator(mode="after")
    def _check(self) -> "HttpProvider":
        media = [t for t in self.body if not t.is_text]
        if media and (self.submit is None or self.output is None):
            raise ValueError("submit and output: a vendor with image or video requests needs both")
        if Task.CHAT in self.body and self.chat is None:
            raise ValueError("body.chat: a chat request needs the vendor's chat API too (chat = { api = \"openai\" })")
        if not media and self.chat is None:
            raise ValueError("body: the vendor has no request (give image or video bodies, or a chat API)")
        return self


@functools.cache
def http_providers(path: Path = DEFAULT_PROVIDERS) -> dict[str, HttpProvider]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProvidersError(f"{path}: cannot read: {exc}") from exc
    found = {}
    for name, raw in data.get("providers", {}).items():
        try:
            found[name] = HttpProvider.model_validate({"id": name, **raw})
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ProvidersError(f"{path}: provider {name!r}: {fields}") from None
    return found


def inference_providers() -> frozenset[str]:
    """The provider names huggingface_hub's InferenceClient knows."""
    from huggingface_hub.inference._providers import PROVIDERS

    return frozenset(PROVIDERS)


def transport_of(provider: str) -> Literal["http", "client"]:
    return "http" if provider in http_providers() else "client"


def check_provider(provider: str, tasks: tuple[Task, ...], own_body: bool = False) -> None:
    """A registry check: the provider exists and has a request for each of the entry's tasks."""
    if provider in http_providers():
        vendor = http_providers()[provider]
        if Task.CHAT in tasks and vendor.chat is None:
            raise ValueError(f"provider {provider!r} (presets/providers.toml) has no chat API; pick a vendor that declares "
                             "chat, or an Inference Providers name")
        if own_body:
            return
        missing = [t.value for t in tasks if not t.is_text and t not in vendor.body]
        if missing:
            raise ValueError(f"provider {provider!r} (presets/providers.toml) has no request body for {missing}")
        return
    if provider not in inference_providers():
        known = sorted(http_providers()) + sorted(inference_providers())
        raise ValueError(f"provider {provider!r} is neither in presets/providers.toml nor an Inference Providers name ({', '.join(known)})")
    missing = [t.value for t in tasks if t not in CLIENT_TASKS]
    if missing:
        raise ValueError(f"InferenceClient has no call for {missing}; use a presets/providers.toml vendor")
    if Task.CHAT in tasks:
        from huggingface_hub.inference._providers import PROVIDERS

        if HUB_TASKS[Task.CHAT] not in PROVIDERS[provider]:
            raise ValueError(f"Inference Providers name {provider!r} has no chat completion in huggingface_hub")
