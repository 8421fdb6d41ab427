"""A local stand-in for the hosted providers, on 127.0.0.1: it speaks the request and answer shapes of

* the Hub's provider mapping (GET /api/models/{id}?expand=inferenceProviderMapping) and the Inference Providers
  router for fal-ai, as huggingface_hub's InferenceClient calls them (sync text-to-image, queued image/video tasks);
* fal's own queue API (submit, status_url, response_url, cancel_url);
* Gemini's generateContent (inline base64 images);
* WaveSpeedAI's v3 API (submit, then poll data.urls.get until data.status is completed).

`mode` picks the behaviour: "ok", "error" (HTTP 422 with a detail), "timeout" (jobs never finish, sync calls hang),
"429-then-ok" (the first submit answers 429 with Retry-After: 0), "malformed" (the output is not an image or video).
Outputs have the size the request asked for, read from the request as each vendor states it."""
from __future__ import annotations

import base64
import io
import json
import os
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from PIL import Image

from pipelines.registry import load_registry

SIZES = load_registry().get("flux.2-pro").sizes  # the api_image table: ratio -> tier -> size
VIDEO_SIZES = load_registry().get("kling-2.6-pro").sizes


def image_bytes(width: int, height: int, seed: int = 0) -> bytes:
    image = Image.new("RGB", (width, height), ((40 + seed * 37) % 256, 120, 200))
    image.paste((250, 200, 60), (width // 4, height // 4, width // 2, height // 2))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def video_bytes(width: int, height: int, frames: int = 6, fps: int = 24) -> bytes:
    import imageio_ffmpeg
    import numpy as np

    fd, path = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        writer = imageio_ffmpeg.write_frames(path, (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                             macro_block_size=2, ffmpeg_log_level="error")
        writer.send(None)
        for i in range(frames):
            frame = np.full((height, width, 3), (30 * i) % 256, dtype=np.uint8)
            frame[: height // 2, : width // 2] = (200, 80, 40)
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        return Path(path).read_bytes()
    finally:
        os.unlink(path)


def _data_url_size(url: str) -> tuple[int, int]:
    data = base64.b64decode(url.split(",", 1)[1])
    return Image.open(io.BytesIO(data)).size


class FakeProvider:
    def __init__(self, mapping: dict[str, tuple[str, str]] | None = None):
        # hub model id -> (task, fal provider id) for the router
        self.mapping = dict(mapping or {})
        self.mode = "ok"
        self.requests: list[dict] = []
        self.jobs: dict[str, dict] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.cancelled: list[str] = []
        self._submits = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self, mode: str = "ok") -> None:
        with self._lock:
            self.mode, self.requests, self._submits, self.cancelled = mode, [], 0, []

    # -- outputs ------------------------------------------------------------------------------------------------------
    def _file(self, data: bytes, suffix: str) -> str:
        name = f"{uuid.uuid4().hex}{suffix}"
        self.files[name] = (data, "image/png" if suffix == ".png" else "video/mp4")
        return f"{self.url}/files/{name}"

    def _output(self, kind: str, width: int, height: int, seed: int = 0) -> bytes:
        if self.mode == "malformed":
            return b"<html>not an output</html>"
        return image_bytes(width, height, seed) if kind == "image" else video_bytes(width, height)

    def _job(self, kind: str, size: tuple[int, int], seed: int, answer_of) -> str:
        rid = uuid.uuid4().hex
        self.jobs[rid] = {"kind": kind, "size": size, "seed": seed, "answer_of": answer_of}
        return rid

    # -- the HTTP side -------------------------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body, content_type: str = "application/json", headers: dict | None = None):
                data = json.dumps(body).encode() if content_type == "application/json" else body
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body):
                fake.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "json": body})

            def do_GET(self):
                self._record(None)
                path = urlparse(self.path).path
                if path.startswith("/api/models/"):
                    model = path[len("/api/models/"):]
                    if model not in fake.mapping:
                        return self._send(404, {"error": f"Repository {model} not found"})
                    task, provider_id = fake.mapping[model]
                    return self._send(200, {"id": model, "_id": "x", "inferenceProviderMapping": {
                        "fal-ai": {"status": "live", "providerId": provider_id, "task": task}}})
                if path.startswith("/files/"):
                    data, kind = fake.files[path[len("/files/"):]]
                    return self._send(200, data, kind)
                parts = path.strip("/").split("/")
                if parts[0] == "q":  # fal queue: /q/{rid}/status or /q/{rid}
                    job = fake.jobs[parts[1]]
                    if len(parts) == 3:
                        status = "IN_PROGRESS" if fake.mode == "timeout" else "COMPLETED"
                        return self._send(200, {"status": status, "request_id": parts[1]})
                    return self._send(200, job["answer_of"](job))
                if parts[:3] == ["api", "v3", "predictions"]:  # wavespeed result polling
                    job = fake.jobs[parts[3]]
                    if fake.mode == "timeout":
                        return self._send(200, {"code": 200, "data": {"id": parts[3], "status": "processing", "outputs": []}})
                    url = fake._file(fake._output(job["kind"], *job["size"], job["seed"]), ".png")
                    return self._send(200, {"code": 200, "data": {"id": parts[3], "status": "completed", "outputs": [url]}})
                return self._send(404, {"detail": f"no route {path}"})

            def do_PUT(self):
                self._record(None)
                parts = urlparse(self.path).path.strip("/").split("/")
                if parts[0] == "q" and parts[-1] == "cancel":
                    fake.cancelled.append(parts[1])
                    return self._send(202, {"status": "CANCELLATION_REQUESTED"})
                return self._send(404, {"detail": "no route"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {"_raw": len(raw)}
                self._record(body)
                with fake._lock:
                    fake._submits += 1
                    first = fake._submits == 1
                if fake.mode == "429-then-ok" and first:
                    return self._send(429, {"detail": "rate limited"}, headers={"Retry-After": "0"})
                if fake.mode == "error":
                    return self._send(422, {"detail": [{"msg": "prompt was rejected by the provider", "loc": ["body", "prompt"]}]})
                url = urlparse(self.path)
                path = url.path
                if ":generateContent" in path:
                    return self._gemini(body)
                if path.startswith("/api/v3/"):
                    return self._wavespeed(body)
                # The router (/fal-ai/...) queues when asked (?_subdomain=queue); fal's own queue (/direct-fal/...) always.
                queued = "_subdomain" in parse_qs(url.query) or not path.startswith("/fal-ai/")
                return self._fal(path, body, queued)

            # fal (router and direct): images[].url or video.url
            def _fal(self, path: str, body: dict, queued: bool):
                size, kind = fal_size(body, path)
                seed = int(body.get("seed") or 0)

                def answer(job):
                    if job["kind"] == "video":
                        return {"video": {"url": fake._file(fake._output("video", *job["size"]), ".mp4")}}
                    width, height = job["size"]
                    return {"images": [{"url": fake._file(fake._output("image", width, height, job["seed"]), ".png"),
                                        "width": width, "height": height}], "seed": job["seed"]}

                if not queued:
                    if fake.mode == "timeout":
                        time.sleep(5)
                    return self._send(200, answer({"kind": kind, "size": size, "seed": seed}))
                rid = fake._job(kind, size, seed, answer)
                base = fake.url
                return self._send(200, {"request_id": rid, "status": "IN_QUEUE", "response_url": f"{base}/q/{rid}",
                                        "status_url": f"{base}/q/{rid}/status", "cancel_url": f"{base}/q/{rid}/cancel"})

            def _gemini(self, body: dict):
                config = body.get("generationConfig", {}).get("imageConfig", {})
                width, height = SIZES[config.get("aspectRatio", "1:1")][config.get("imageSize", "1K")]
                data = fake._output("image", width, height)
                if fake.mode == "timeout":
                    time.sleep(5)
                return self._send(200, {"candidates": [{"content": {"role": "model", "parts": [
                    {"text": "Here is your image."},
                    {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(data).decode()}}]}}]})

            def _wavespeed(self, body: dict):
                width, height = (int(v) for v in str(body.get("size", "1024*1024")).split("*"))
                rid = fake._job("image", (width, height), int(body.get("seed") or 0), None)
                return self._send(200, {"code": 200, "data": {"id": rid, "status": "created",
                                                              "urls": {"get": f"{fake.url}/api/v3/predictions/{rid}/result"}}})

        return Handler


def fal_size(body: dict, path: str) -> tuple[tuple[int, int], str]:
    """The output size and kind a fal request asks for, as each endpoint states it."""
    if "video" in path or "avatar" in path:
        if body.get("target_size"):
            return (body["target_size"]["width"], body["target_size"]["height"]), "video"
        if body.get("aspect_ratio"):
            return tuple(VIDEO_SIZES[body["aspect_ratio"]]["720p"]), "video"
        start = body.get("start_image_url") or body.get("image_url")
        return _data_url_size(start), "video"
    size = body.get("image_size")
    if isinstance(size, dict):
        return (size["width"], size["height"]), "image"
    if body.get("width"):
        return (body["width"], body["height"]), "image"
    return (1024, 1024), "image"
