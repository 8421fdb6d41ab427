"""Runs API-only registry entries (backend = "remote"): Inference Providers through huggingface_hub's InferenceClient
with the deployer's token, other vendors through the data-driven HTTP transport. Outputs come back as the same
`GenerationResult` a local family returns, with the provider and its model id in the parameters."""
from __future__ import annotations

import base64
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from ..registry import ModelEntry, closest_ratio
from ..types import GenerationRequest, GenerationResult, StepCallback, Task, VideoFrames
from .calls import Call, Malformed, Refused, RemoteFailed, TimedOut, classify
from .templates import dig, fill
from .transports import CLIENT_TASKS, HttpProvider, http_providers, transport_of

__all__ = ["RemoteBackend", "RemoteFailed", "RemoteSettings"]

_TIERS = {"1K": 1024, "2K": 2048, "4K": 4096}


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
                data = call.run(lambda: call.in_thread(lambda: self._client_call(key, entry, task, model, request, seed)))
            else:
                data = call.run(lambda: self._http_call(call, key, entry, task, model, request, seed))
            attempts += call.attempts
            try:
                if task.is_video:
                    videos.append(decode_video(data, request.width, request.height))
                else:
                    images.append(decode_image(data, request.width, request.height))
            except Malformed as exc:
                raise RemoteFailed(f"{label} answered without a usable output ({exc}). Your credits were refunded; "
                                   "try again, and pick another model if it keeps happening.") from exc
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

    # -- InferenceClient ---------------------------------------------------------------------------------------------
    def _client(self, key: str, provider: str):
        from huggingface_hub import InferenceClient

        return InferenceClient(provider=provider, api_key=key, timeout=self.settings.request_timeout_s)

    def _client_call(self, key: str, entry: ModelEntry, task: Task, model: str, request: GenerationRequest, seed: int) -> bytes:
        from huggingface_hub.errors import HfHubHTTPError

        client = self._client(key, entry.provider or "")
        extra = dict(entry.remote_params)
        method = CLIENT_TASKS[task]
        try:
            if method == "text_to_image":
                image = client.text_to_image(request.prompt, model=model, width=request.width, height=request.height,
                                             negative_prompt=request.negative_prompt or None, seed=seed,
                                             num_inference_steps=request.steps, guidance_scale=request.guidance, extra_body=extra or None)
                return _png(image)
            if method == "image_to_image":
                image = client.image_to_image(_png(request.reference_images[0]), prompt=request.prompt, model=model,
                                              target_size={"width": request.width, "height": request.height},
                                              negative_prompt=request.negative_prompt or None, seed=seed, **extra)
                return _png(image)
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
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise TimedOut() from exc
        except httpx.HTTPError as exc:  # no answer at all (connection refused or dropped)
            raise classify(503, f"cannot connect: {type(exc).__name__}") from exc
        except (KeyError, ValueError, TypeError, IndexError, OSError) as exc:  # an answer without a usable output
            raise Malformed(f"{type(exc).__name__}: {exc}"[:200]) from exc

    # -- data-driven vendors ----------------------------------------------------------------------------------------
    def _http_call(self, call: Call, key: str, entry: ModelEntry, task: Task, model: str, request: GenerationRequest, seed: int) -> bytes:
        provider = http_providers()[entry.provider or ""]
        base_url = self.settings.base_urls.get(provider.id, provider.base_url).rstrip("/")
        headers = {provider.auth_header: provider.auth_value.format(key=key)}
        body = fill(entry.remote_body or provider.body[task], template_values(entry, task, request, seed))
        body.update(entry.remote_params)
        url = provider.submit.format(base_url=base_url, model=model)
        with httpx.Client(timeout=min(self.settings.request_timeout_s, max(1.0, call.remaining)), follow_redirects=True) as http:
            answer = _json(_send(http, "POST", url, headers, body))
            if provider.queue is not None:
                answer = self._wait(call, http, provider, headers, answer)
            path = provider.output.video if task.is_video else provider.output.image
            try:
                found = dig(answer, path or "")
            except KeyError as exc:
                raise Malformed(f"no {path!r} in the answer") from exc
            if provider.output.kind == "base64":
                return _b64(found)
            return fetch(http, str(found), headers if _same_host(str(found), base_url) else {})

    def _wait(self, call: Call, http: httpx.Client, provider: HttpProvider, headers: dict, submitted: Any) -> Any:
        queue = provider.queue
        assert queue is not None
        try:
            poll_url = str(dig(submitted, queue.poll))
        except KeyError as exc:
            raise Malformed(f"no {queue.poll!r} in the submit answer") from exc
        try:
            while True:
                status_answer = _json(_send(http, "GET", poll_url, headers))
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
                    http.put(str(cancel_url), headers=headers, timeout=5)
                except httpx.HTTPError:
                    pass
            raise
        if queue.result:
            return _json(_send(http, "GET", str(dig(submitted, queue.result)), headers))
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


def _send(http: httpx.Client, method: str, url: str, headers: dict, body: Any = None) -> httpx.Response:
    try:
        response = http.request(method, url, headers=headers, json=body)
    except httpx.TimeoutException as exc:
        raise TimedOut() from exc
    except httpx.HTTPError as exc:
        raise classify(503, f"cannot connect: {type(exc).__name__}") from exc
    if response.status_code >= 400:
        raise classify(response.status_code, _detail_text(response), response.headers.get("retry-after"))
    return response


def fetch(http: httpx.Client, url: str, headers: dict) -> bytes:
    if url.startswith("data:"):
        return _b64(url.split(",", 1)[-1])
    return _send(http, "GET", url, headers).content


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
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
    if response is None:
        return ""
    try:
        data = response.json()
        detail = data.get("detail") or data.get("error") or data.get("message") if isinstance(data, dict) else data
        return str(detail if detail is not None else data)[:300]
    except Exception:
        return (response.text or "")[:300]


def _same_host(url: str, base_url: str) -> bool:
    return httpx.URL(url).host == httpx.URL(base_url).host


def _b64(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=False)
    except (ValueError, TypeError) as exc:
        raise Malformed("the output is not base64") from exc


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decode_image(data: bytes, width: int, height: int) -> Image.Image:
    """A provider's image bytes as an RGB image of the requested size (resized when the provider rounded it)."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:
        raise Malformed("the image does not decode") from exc
    image = image.convert("RGB")
    return image if image.size == (width, height) else image.resize((width, height), Image.LANCZOS)


def decode_video(data: bytes, width: int, height: int) -> VideoFrames:
    """A provider's video as frames; the file is kept as it came (with its soundtrack) when its size is the requested
    one, else the frames are resized and re-encoded by the store."""
    import imageio_ffmpeg

    fd, name = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        Path(name).write_bytes(data)
        try:
            reader = imageio_ffmpeg.read_frames(name)
            meta = reader.__next__()
            size = tuple(meta["size"])
            frames = VideoFrames(Image.frombytes("RGB", size, bytes(chunk)) for chunk in reader)
        except (RuntimeError, OSError, StopIteration, KeyError, ValueError) as exc:
            raise Malformed("the video does not decode") from exc
    finally:
        os.unlink(name)
    if not frames:
        raise Malformed("the video has no frames")
    if size == (width, height):
        frames.encoded = data
        return frames
    return VideoFrames(frame.resize((width, height), Image.LANCZOS) for frame in frames)
