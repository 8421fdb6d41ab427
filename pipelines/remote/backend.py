"""Runs API-only registry entries (backend = "remote"): Inference Providers through huggingface_hub's InferenceClient
with the deployer's token, other vendors through the data-driven HTTP transport. Outputs come back as the same
`GenerationResult` a local family returns, with the provider and its model id in the parameters.

Every HTTP request of a call runs in a worker thread under pipelines/remote/limits.py: the deadline and Stop hold for
the whole exchange (a slowly dripping body included), answers are capped in bytes while they stream, the key goes
only to the configured origins, and non-public addresses are refused unless allow-listed. Outputs are bounded in
pixels from their header (images) or container probe (videos) before they are decoded."""
from __future__ import annotations

import base64
import binascii
import io
import json
import os
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image

from ..registry import ModelEntry, closest_ratio
from ..types import GenerationRequest, GenerationResult, StepCallback, Task, VideoFrames
from .calls import Call, Malformed, Oversized, Refused, RemoteFailed, TimedOut, classify
from .outputs import MAX_PIXELS, bounded, decode_image, decode_video
from .limits import MB, AddressPolicy, Exchange, install_hub_guard, origin, parse_hosts, read_limited, serving_hub
from .templates import dig, fill
from .transports import CLIENT_TASKS, HttpProvider, http_providers, transport_of

__all__ = ["RemoteBackend", "RemoteFailed", "RemoteSettings"]

_TIERS = {"1K": 1024, "2K": 2048, "4K": 4096}
JSON_BYTES = 8 * MB  # a JSON answer that carries output URLs, not the output itself
ERROR_BYTES = 64 * 1024  # what is read of an error answer for its detail


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
        from huggingface_hub import constants

        install_hub_guard()  # already done at start-up unless someone replaced the factory since
        router = self.settings.router_url or constants.INFERENCE_PROXY_TEMPLATE.split("{provider}")[0]
        origins = {origin(router), origin(self.settings.hub_url or constants.ENDPOINT)}
        if not key.startswith("hf_"):  # a provider's own key goes to that provider's API, not through the router
            from huggingface_hub.inference._providers import PROVIDERS

            helper = PROVIDERS.get(entry.provider or "", {}).get(_hub_task(task))
            if helper is not None:
                origins.add(origin(helper.base_url))
        exchange = Exchange(call, self.policy, self._cap(task) * 4 // 3 + MB, frozenset(origins),
                            frozenset({"authorization"}), self.settings.request_timeout_s, spool=True)
        with serving_hub(exchange):
            return self._client_call(key, entry, task, model, request, seed)

    def _client(self, key: str, provider: str):
        from huggingface_hub import InferenceClient

        return InferenceClient(provider=provider, api_key=key, timeout=self.settings.request_timeout_s)

    def _client_call(self, key: str, entry: ModelEntry, task: Task, model: str, request: GenerationRequest, seed: int) -> bytes:
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError

        client = self._client(key, entry.provider or "")
        extra = dict(entry.remote_params)
        method = CLIENT_TASKS[task]
        try:
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
        except HfHubHTTPError as exc:
            response = exc.response
            status = response.status_code if response is not None else 502
            retry_after = response.headers.get("retry-after") if response is not None else None
            raise classify(status, _detail_text(response), retry_after) from exc
        except (httpx.TimeoutException, httpx2.TimeoutException, TimeoutError) as exc:
            raise TimedOut() from exc
        except (httpx.HTTPError, httpx2.HTTPError) as exc:  # no answer at all (connection refused or dropped)
            raise classify(503, f"cannot connect: {type(exc).__name__}") from exc
        except Image.DecompressionBombError as exc:
            raise Oversized(f"the image declares more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels") from exc
        except (KeyError, ValueError, TypeError, IndexError, OSError) as exc:  # an answer without a usable output
            raise Malformed(f"{type(exc).__name__}: {exc}"[:200]) from exc

    # -- data-driven vendors ----------------------------------------------------------------------------------------
    def _http_call(self, call: Call, key: str, entry: ModelEntry, task: Task, model: str, request: GenerationRequest, seed: int) -> bytes:
        provider = http_providers()[entry.provider or ""]
        base_url = self.settings.base_urls.get(provider.id, provider.base_url).rstrip("/")
        # The key header is set on every request; the exchange drops it for any origin but the base URL's.
        headers = {provider.auth_header: provider.auth_value.format(key=key)}
        body = fill(entry.remote_body or provider.body[task], template_values(entry, task, request, seed))
        body.update(entry.remote_params)
        url = provider.submit.format(base_url=base_url, model=model)
        cap = self._cap(task)
        answer_cap = cap * 4 // 3 + MB if provider.output.kind == "base64" else JSON_BYTES
        exchange = Exchange(call, self.policy, max(cap, answer_cap), frozenset({origin(base_url)}),
                            frozenset({provider.auth_header.lower()}), self.settings.request_timeout_s)
        with exchange.client() as http:
            answer = _json(_send(http, "POST", url, headers, answer_cap, body))
            if provider.queue is not None:
                answer = self._wait(call, exchange, http, provider, headers, answer)
            path = provider.output.video if task.is_video else provider.output.image
            try:
                found = dig(answer, path or "")
            except KeyError as exc:
                raise Malformed(f"no {path!r} in the answer") from exc
            if provider.output.kind == "base64":
                return _b64(found, cap)
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
                status_answer = _json(_send(http, "GET", poll_url, headers, JSON_BYTES))
                status = str(_maybe(status_answer, queue.status))
                if status in queue.done:
                    break
                if status in queue.failed:
                    raise Refused(200, str(_maybe(status_answer, queue.error) or "the job failed"))
                call.sleep(queue.poll_s)
        except BaseException:
            cancel_url = _maybe(submitted, queue.cancel) if queue.cancel else None
            if cancel_url:  # stop the provider's job too (best effort: it may already run)
                try:
                    with exchange.cleanup():
                        _send(http, "PUT", str(cancel_url), headers, ERROR_BYTES)
                except Exception:
                    pass
            raise
        if queue.result:
            try:
                result_url = str(dig(submitted, queue.result))
            except KeyError as exc:
                raise Malformed(f"no {queue.result!r} in the submit answer") from exc
            answer_cap = exchange.max_bytes if provider.output.kind == "base64" else JSON_BYTES
            return _json(_send(http, "GET", result_url, headers, answer_cap))
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


def _send(http: httpx.Client, method: str, url: str, headers: dict, limit: int, body: Any = None) -> bytes:
    """One request, its answer streamed and read up to `limit` bytes (the exchange checks the call between chunks)."""
    try:
        with http.stream(method, url, headers=headers, json=body) as response:
            if response.status_code >= 400:
                detail = _detail_text(read_limited(response, ERROR_BYTES, truncate=True))
                raise classify(response.status_code, detail, response.headers.get("retry-after"))
            return read_limited(response, limit)
    except httpx.TimeoutException as exc:
        raise TimedOut() from exc
    except httpx.HTTPError as exc:
        raise classify(503, f"cannot connect: {type(exc).__name__}") from exc


def fetch(http: httpx.Client, url: str, headers: dict, limit: int) -> bytes:
    if url.startswith("data:"):
        return _b64(url.split(",", 1)[-1], limit)
    return _send(http, "GET", url, headers, limit)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise Malformed("the answer is not JSON") from exc


def _maybe(data: Any, path: str | None) -> Any:
    if not path:
        return None
    try:
        return dig(data, path)
    except KeyError:
        return None


def _detail_text(response) -> str:
    """An error answer's detail: `response` is an httpx/httpx2 response whose body was read, or that body's bytes."""
    if response is None:
        return ""
    raw = response if isinstance(response, bytes) else None
    try:
        data = json.loads(raw) if raw is not None else response.json()
        detail = data.get("detail") or data.get("error") or data.get("message") if isinstance(data, dict) else data
        return str(detail if detail is not None else data)[:300]
    except Exception:
        try:
            return (raw.decode("utf-8", "replace") if raw is not None else response.text or "")[:300]
        except Exception:
            return ""


def _b64(value: Any, limit: int) -> bytes:
    text = str(value)
    if len(text) > limit * 4 // 3 + 4:
        raise Oversized(f"more than {limit / MB:g} MB")
    try:
        return base64.b64decode(text, validate=False)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise Malformed("the output is not base64") from exc


def _hub_task(task: Task) -> str:
    return {"text_to_image": "text-to-image", "image_to_image": "image-to-image", "image_to_video": "image-to-video",
            "text_to_video": "text-to-video"}[CLIENT_TASKS[task]]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
