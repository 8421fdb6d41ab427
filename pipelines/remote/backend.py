"""Runs API-only registry entries (backend = "remote"): Inference Providers through huggingface_hub's InferenceClient
with the deployer's token, other vendors through the data-driven HTTP transport. Outputs come back as the same
`GenerationResult` a local family returns, with the provider and its model id in the parameters.

Every HTTP request of a call runs in a worker thread under pipelines/remote/limits.py: the deadline and Stop hold for
the whole exchange (a slowly dripping body included), answers are capped in bytes while they stream, the key goes
only to the configured origins, and non-public addresses are refused unless allow-listed. Outputs are bounded in
pixels from their header (images) or container probe (videos) before they are decoded. Language models (task chat)
stream their reply under the same limits (pipelines/remote/chat.py)."""
from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image

from ..registry import ModelEntry, closest_ratio
from ..types import GenerationRequest, GenerationResult, StepCallback, Task, VideoFrames
from .answers import ERROR_BYTES, as_json, b64, fetch, hub_errors, maybe, send
from .calls import Call, Malformed, Oversized, Refused, RemoteFailed
from .chat import run_chat
from .outputs import MAX_PIXELS, bounded, decode_image, decode_video
from .limits import MB, AddressPolicy, Exchange, install_hub_guard, origin, parse_hosts, serving_hub
from .templates import dig, fill
from .transports import CLIENT_TASKS, HUB_TASKS, HttpProvider, http_providers, transport_of

__all__ = ["RemoteBackend", "RemoteFailed", "RemoteSettings"]

_TIERS = {"1K": 1024, "2K": 2048, "4K": 4096}
JSON_BYTES = 8 * MB  # a JSON answer that carries output URLs, not the output itself


@dataclass(frozen=True)
class RemoteSettings:
    """How remote entries are reached. Keys are the deployer's: the HF token for Inference Providers, and each vendor's
    own environment variable (presets/providers.toml key_env); a visitor's token is never used."""

    hf_token: str | None = None
    timeout_s: float = 300.0  # one whole request, queue waits included
    request_timeout_s: float = 60.0  # one HTTP call
    retries: int = 3  # extra tries after a 429 or 5xx
    backoff_s: float = 2.0  # first wait; doubles per try (a Retry-After header wins)
    router_url: str | None = None  # the Inference Providers router (default https://router.huggingface.co)
    hub_url: str | None = None  # the Hub API that maps model ids to providers (default https://huggingface.co)
    base_urls: dict[str, str] = field(default_factory=dict)  # vendor id -> base URL override
    keys: dict[str, str] = field(default_factory=dict)  # vendor id -> key (default: the vendor's key_env variable)
    # Hosts ("host" or "host:port") a call may reach although they are loopback or private (a proxy on the deployer's
    # network; the tests' fake provider on 127.0.0.1). Everything else must resolve to a public address.
    allow_hosts: frozenset[str] | tuple[str, ...] | str = ()
    self_hosts: frozenset[str] | tuple[str, ...] | str = ()  # the app's own public host names: never fetched
    max_image_bytes: int = 50 * MB  # one image output (or one answer of an image call)
    max_video_bytes: int = 200 * MB  # one video output (or one answer of a video call)
    max_pixels: int = MAX_PIXELS  # one image, or one video frame, read from the header before decoding
    max_video_pixels: int = 1_000_000_000  # a whole video: frames x width x height (about 3 GB as RGB)
    max_chat_bytes: int = 2 * MB  # one streamed chat answer, every chunk of it (the reply text has its own cap)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow_hosts", parse_hosts(self.allow_hosts))
        object.__setattr__(self, "self_hosts", parse_hosts(self.self_hosts))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "RemoteSettings":
        env = os.environ if environ is None else environ
        base_urls = {}
        for provider in http_providers():
            value = env.get(f"PLAYGROUND_PROVIDER_URL_{provider.upper().replace('-', '_')}")
            if value:
                base_urls[provider] = value
        return cls(
            hf_token=env.get("PLAYGROUND_HF_TOKEN") or env.get("HF_TOKEN") or None,
            timeout_s=float(env.get("PLAYGROUND_REMOTE_TIMEOUT_S", 300)),
            retries=int(env.get("PLAYGROUND_REMOTE_RETRIES", 3)),
            router_url=env.get("PLAYGROUND_HF_ROUTER") or None,
            hub_url=env.get("PLAYGROUND_HF_HUB_URL") or None,
            base_urls=base_urls,
            allow_hosts=env.get("PLAYGROUND_REMOTE_ALLOW_HOSTS", ""),
            self_hosts=env.get("SPACE_HOST", ""),  # set by Hugging Face Spaces
            max_image_bytes=int(float(env.get("PLAYGROUND_REMOTE_MAX_IMAGE_MB", 50)) * MB),
            max_video_bytes=int(float(env.get("PLAYGROUND_REMOTE_MAX_VIDEO_MB", 200)) * MB),
            max_chat_bytes=int(float(env.get("PLAYGROUND_REMOTE_MAX_CHAT_MB", 2)) * MB),
        )


class RemoteBackend:
    def __init__(self, settings: RemoteSettings | None = None):
        self.settings = settings or RemoteSettings.from_env()
        if self.settings.router_url or self.settings.hub_url:
            from huggingface_hub import constants

            # A proxy or the tests' local server stands in for the router and the Hub's provider mapping (once, for
            # the process: huggingface_hub reads these module constants at call time).
            if self.settings.router_url:
                constants.INFERENCE_PROXY_TEMPLATE = self.settings.router_url.rstrip("/") + "/{provider}"
            if self.settings.hub_url:
                constants.ENDPOINT = self.settings.hub_url.rstrip("/")
        self.policy = AddressPolicy(frozenset(self.settings.allow_hosts), frozenset(self.settings.self_hosts))
        # huggingface_hub's shared session goes through the same limits during a remote call (installed once, at start-up,
        # so that no session in use is swapped later; outside a call it passes requests through).
        install_hub_guard()

    # -- what a visitor sees before running ------------------------------------------------------------------------
    def status(self, entry: ModelEntry) -> dict[str, Any]:
        label = self.label(entry)
        key = self._key(entry)
        if not key:
            what = "a Hugging Face token (HF_TOKEN)" if transport_of(entry.provider or "") == "client" else \
                f"an API key ({http_providers()[entry.provider].key_env})"
            return {"runnable": False, "preview": False, "weights": "remote",
                    "note": f"runs on {label}; this deployment has no {what} for it"}
        return {"runnable": True, "preview": False, "weights": "remote", "note": f"runs on {label} (API)"}

    def label(self, entry: ModelEntry) -> str:
        provider = entry.provider or ""
        if transport_of(provider) == "http":
            return http_providers()[provider].label
        return f"{provider} (Hugging Face Inference Providers)"

    def _key(self, entry: ModelEntry) -> str | None:
        provider = entry.provider or ""
        if transport_of(provider) == "client":
            return self.settings.hf_token
        return self.settings.keys.get(provider) or os.environ.get(http_providers()[provider].key_env) or None

    def require_key(self, entry: ModelEntry) -> str:
        key = self._key(entry)
        if not key:
            raise RemoteFailed(f"{entry.name} runs on {self.label(entry)}, and this deployment has no key for it; "
                               "pick a local model (the deployer can add the key in the Space settings).")
        return key

    # -- running ---------------------------------------------------------------------------------------------------
    def run(self, entry: ModelEntry, task: Task, request: GenerationRequest, on_step: StepCallback,
            cancel=None) -> GenerationResult:
        if task.is_text:  # a reply streamed piece by piece (pipelines/remote/chat.py)
            return run_chat(self, entry, request, on_step, cancel)
        key = self.require_key(entry)
        label = self.label(entry)
        model = entry.remote_model_for(task)
        total = max(1, request.steps) * request.count
        images: list[Image.Image] = []
        videos: list[VideoFrames] = []
        attempts = 0
        for index, seed in enumerate(request.seeds()):
            call = Call(label, self.settings.timeout_s, self.settings.retries, self.settings.backoff_s, cancel)
            on_step(index * max(1, request.steps), total)
            if transport_of(entry.provider or "") == "client":
                work = lambda: self._client_work(call, key, entry, task, model, request, seed)  # noqa: E731
            else:
                work = lambda: self._http_call(call, key, entry, task, model, request, seed)  # noqa: E731
            # The whole exchange runs in a worker: the deadline and Stop end the wait at once; the worker stops at its
            # next received chunk (limits.py). Decoding is bounded by the output's header before any pixel is read.
            output = call.run(lambda: self._decode(call.in_thread(work), task, request))
            attempts += call.attempts
            (videos if task.is_video else images).append(output)
            on_step((index + 1) * max(1, request.steps), total)
        parameters = {
            "prompt": request.prompt, "negative_prompt": request.negative_prompt, "width": request.width,
            "height": request.height, "steps": request.steps, "guidance": request.guidance, "count": request.count,
            "provider": entry.provider, "provider_name": label, "remote_model": model, "attempts": attempts,
            "transport": "InferenceClient" if transport_of(entry.provider or "") == "client" else "http",
        }
        if request.script:
            parameters.update(script=request.script, voice=request.voice)
        if task.is_video:
            parameters.update(num_frames=request.num_frames, fps=request.fps)
        return GenerationResult(seeds=request.seeds(), parameters=parameters, images=images, videos=videos)

    def _decode(self, data: bytes, task: Task, request: GenerationRequest):
        if task.is_video:
            return decode_video(data, request.width, request.height, self.settings.max_pixels, self.settings.max_video_pixels)
        return decode_image(data, request.width, request.height, self.settings.max_pixels)

    def _cap(self, task: Task) -> int:
        return self.settings.max_video_bytes if task.is_video else self.settings.max_image_bytes

    # -- InferenceClient ---------------------------------------------------------------------------------------------
    def _client_work(self, call: Call, key: str, entry: ModelEntry, task: Task, model: str, request: GenerationRequest,
                     seed: int) -> bytes:
        """One InferenceClient call in the call's worker thread, its requests (huggingface_hub's shared session) held
        to an exchange: the token only for the router and the Hub, any answer capped (a base64 answer may be a third
        larger than its output)."""
        install_hub_guard()  # already done at start-up unless someone replaced the factory since
        exchange = Exchange(call, self.policy, self._cap(task) * 4 // 3 + MB, self.hub_origins(key, entry, task),
                            frozenset({"authorization"}), self.settings.request_timeout_s, spool=True)
        with serving_hub(exchange):
            return self._client_call(key, entry, task, model, request, seed)

    def hub_origins(self, key: str, entry: ModelEntry, task: Task) -> frozenset:
        """Where InferenceClient may send the key: the router and the Hub, and with a provider's own key (not an HF
        token) that provider's API, which InferenceClient then calls directly."""
        from huggingface_hub import constants

        router = self.settings.router_url or constants.INFERENCE_PROXY_TEMPLATE.split("{provider}")[0]
        origins = {origin(router), origin(self.settings.hub_url or constants.ENDPOINT)}
        if not key.startswith("hf_"):
            from huggingface_hub.inference._providers import PROVIDERS

            helper = PROVIDERS.get(entry.provider or "", {}).get(HUB_TASKS[task])
            if helper is not None:
                origins.add(origin(helper.base_url))
        return frozenset(origins)

    def inference_client(self, key: str, provider: str):
        from huggingface_hub import InferenceClient

        return InferenceClient(provider=provider, api_key=key, timeout=self.settings.request_timeout_s)

    def _client_call(self, key: str, entry: ModelEntry, task: Task, model: str, request: GenerationRequest, seed: int) -> bytes:
        client = self.inference_client(key, entry.provider or "")
        extra = dict(entry.remote_params)
        method = CLIENT_TASKS[task]
        try:
            with hub_errors():
                return self._client_method(client, method, model, request, seed, extra)
        except Image.DecompressionBombError as exc:
            raise Oversized(f"the image declares more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels") from exc
        except (KeyError, ValueError, TypeError, IndexError, OSError) as exc:  # an answer without a usable output
            raise Malformed(f"{type(exc).__name__}: {exc}"[:200]) from exc

    def _client_method(self, client, method: str, model: str, request: GenerationRequest, seed: int, extra: dict) -> bytes:
        if method == "text_to_image":
            image = client.text_to_image(request.prompt, model=model, width=request.width, height=request.height,
                                         negative_prompt=request.negative_prompt or None, seed=seed,
                                         num_inference_steps=request.steps, guidance_scale=request.guidance, extra_body=extra or None)
            return _png(bounded(image, self.settings.max_pixels))
        if method == "image_to_image":
            image = client.image_to_image(_png(request.reference_images[0]), prompt=request.prompt, model=model,
                                          target_size={"width": request.width, "height": request.height},
                                          negative_prompt=request.negative_prompt or None, seed=seed, **extra)
            return _png(bounded(image, self.settings.max_pixels))
        if method == "image_to_video":
            return client.image_to_video(_png(request.reference_images[0]), prompt=request.prompt, model=model,
                                         num_frames=request.num_frames, negative_prompt=request.negative_prompt or None,
                                         target_size={"width": request.width, "height": request.height}, seed=seed, **extra)
        # text_to_video has no size arguments: the aspect ratio goes in the body, as fal's video endpoints read it
        return client.text_to_video(request.prompt, model=model, num_frames=request.num_frames,
                                    negative_prompt=[request.negative_prompt] if request.negative_prompt else None,
                                    seed=seed, extra_body={"aspect_ratio": closest_ratio(request.width, request.height), **extra})

    # -- data-driven vendors ----------------------------------------------------------------------------------------
    def _http_call(self, call: Call, key: str, entry: ModelEntry, task: Task, model: str, request: GenerationRequest, seed: int) -> bytes:
        provider = http_providers()[entry.provider or ""]
        base_url = self.settings.base_urls.get(provider.id, provider.base_url).rstrip("/")
        # The key header is set on every request; the exchange drops it for any origin but the base URL's.
        headers = {provider.auth_header: provider.auth_value.format(key=key)}
        body = fill(entry.remote_body or provider.body[task], template_values(entry, task, request, seed))
        body.update(entry.remote_params)
        assert provider.submit is not None and provider.output is not None  # a vendor with this task's body has both
        url = provider.submit.format(base_url=base_url, model=provider.models.get(model, model))
        cap = self._cap(task)
        answer_cap = cap * 4 // 3 + MB if provider.output.kind == "base64" else JSON_BYTES
        exchange = Exchange(call, self.policy, max(cap, answer_cap), frozenset({origin(base_url)}),
                            frozenset({provider.auth_header.lower()}), self.settings.request_timeout_s)
        with exchange.client() as http:
            answer = as_json(send(http, "POST", url, headers, answer_cap, body))
            if provider.queue is not None:
                answer = self._wait(call, exchange, http, provider, headers, answer)
            path = provider.output.video if task.is_video else provider.output.image
            try:
                found = dig(answer, path or "")
            except KeyError as exc:
                raise Malformed(f"no {path!r} in the answer") from exc
            if provider.output.kind == "base64":
                return b64(found, cap)
            return fetch(http, str(found), headers, cap)

    def _wait(self, call: Call, exchange: Exchange, http: httpx.Client, provider: HttpProvider, headers: dict,
              submitted: Any) -> Any:
        queue = provider.queue
        assert queue is not None
        try:
            poll_url = str(dig(submitted, queue.poll))
        except KeyError as exc:
            raise Malformed(f"no {queue.poll!r} in the submit answer") from exc
        try:
            while True:
                status_answer = as_json(send(http, "GET", poll_url, headers, JSON_BYTES))
                status = str(maybe(status_answer, queue.status))
                if status in queue.done:
                    break
                if status in queue.failed:
                    raise Refused(200, str(maybe(status_answer, queue.error) or "the job failed"))
                call.sleep(queue.poll_s)
        except BaseException:
            cancel_url = maybe(submitted, queue.cancel) if queue.cancel else None
            if cancel_url:  # stop the provider's job too (best effort: it may already run)
                try:
                    with exchange.cleanup():
                        send(http, "PUT", str(cancel_url), headers, ERROR_BYTES)
                except Exception:
                    pass
            raise
        if queue.result:
            try:
                result_url = str(dig(submitted, queue.result))
            except KeyError as exc:
                raise Malformed(f"no {queue.result!r} in the submit answer") from exc
            answer_cap = exchange.max_bytes if provider.output.kind == "base64" else JSON_BYTES
            return as_json(send(http, "GET", result_url, headers, answer_cap))
        return status_answer


def template_values(entry: ModelEntry, task: Task, request: GenerationRequest, seed: int) -> dict[str, Any]:
    items = []
    for image in request.reference_images:
        data = base64.b64encode(_png(image)).decode("ascii")
        items.append({"item_b64": data, "item_mime": "image/png", "item_url": f"data:image/png;base64,{data}"})
    fps = request.fps or entry.defaults.fps or 24
    frames = request.num_frames or entry.defaults.num_frames or 0
    side = max(request.width, request.height)
    return {
        "prompt": request.prompt, "negative_prompt": request.negative_prompt, "width": request.width,
        "height": request.height, "size_text": f"{request.width}*{request.height}", "seed": seed,
        "aspect_ratio": closest_ratio(request.width, request.height),
        "resolution": next((t for t, s in _TIERS.items() if side <= s * 1.05), "4K") if not task.is_video else f"{min(request.width, request.height)}p",
        "image": items[0]["item_url"] if items else None, "images": [i["item_url"] for i in items], "images_items": items,
        "duration_s": "10" if frames and frames / fps > 7.5 else "5", "num_frames": request.num_frames, "fps": request.fps,
        "script": request.script, "voice": request.voice, "steps": request.steps, "guidance": request.guidance,
    }


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
