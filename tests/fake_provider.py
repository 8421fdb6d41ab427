"""A local stand-in for the hosted providers, on 127.0.0.1: it speaks the request and answer shapes of

* the Hub's provider mapping (GET /api/models/{id}?expand=inferenceProviderMapping) and the Inference Providers
  router for fal-ai, as huggingface_hub's InferenceClient calls them (sync text-to-image, queued image/video tasks);
* fal's own queue API (submit, status_url, response_url, cancel_url);
* Gemini's generateContent (inline base64 images);
* WaveSpeedAI's v3 API (submit, then poll data.urls.get until data.status is completed);
* chat completions, streamed (any POST to .../chat/completions: the router's provider routes and an OpenAI-compatible
  vendor's), with their own modes in tests/fake_chat.py.

`mode` picks the behaviour: "ok", "error" (HTTP 422 with a detail), "timeout" (jobs never finish, sync calls hang),
"429-then-ok" (the first submit answers 429 with Retry-After: 0), "malformed" (the output is not an image or video).
Output files (GET /files/...) can misbehave too: "drip" (one byte every 2 s), "huge" (400 MB of zeros, chunked, made
as it is sent), "huge-declared" (the same with Content-Length: 400 MB), "gzip-bomb" (400 MB of zeros gzip-compressed
to well under 1 MB), "huge-png" (every image output is a PNG whose header says 12000x12000, 144 MP, with its data
truncated). `queue_url` and `files_url` put the queue's status/result/cancel URLs and the output URLs on another
origin (`add_origin()` starts a second server on another port; `requests` records which server got each request).
Outputs have the size the request asked for, read from the request as each vendor states it. `hold_s` makes a slow
provider: a queued fal job stays IN_PROGRESS that long after its submit (bench/load.py)."""
from __future__ import annotations

import base64
import io
import json
import os
import struct
import tempfile
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from PIL import Image

from pipelines.registry import load_registry

from . import fake_chat

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


HUGE_BYTES = 400 * 1024 * 1024
ZEROS = bytes(1 << 20)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height but whose data holds only the first rows (a reader that trusts the
    header must refuse it before decoding; decoding it would allocate width x height x 3 bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(bytes(1 + width * 3) * 4)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def _gzip_zeros(total: int):
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for _ in range(total // len(ZEROS)):
        out = packer.compress(ZEROS)
        if out:
            yield out
    yield packer.flush()


def _data_url_size(url: str) -> tuple[int, int]:
    data = base64.b64decode(url.split(",", 1)[1])
    return Image.open(io.BytesIO(data)).size


class FakeProvider:
    def __init__(self, mapping: dict[str, tuple[str, ...]] | None = None):
        # hub model id -> (task, provider's model id[, provider name: default fal-ai]) for the Hub's provider mapping
        self.mapping = dict(mapping or {})
        self.mode = "ok"
        self.hold_s = 0.0  # a queued job answers IN_PROGRESS until this long after its submit
        self.requests: list[dict] = []
        self.jobs: dict[str, dict] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.cancelled: list[str] = []
        self.queue_url: str | None = None  # where the queue's status/result/cancel URLs point (default: self.url)
        self.files_url: str | None = None  # where output URLs point (default: self.url)
        self.redirect_url: str | None = None  # mode "redirect": where chat POSTs on the first origin are sent on to
        self.chat_streams: list[dict] = []  # each streamed chat answer: its mode, bytes sent and whether it has ended
        self.streamed = 0  # body bytes sent by the misbehaving output modes
        self.dripping = threading.Event()  # set when a dripping body has started
        self._closing = threading.Event()
        self._submits = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.servers = [self.server]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add_origin(self) -> str:
        """Another server (another port, so another origin) with the same routes and state; its URL."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self.servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}"

    def close(self) -> None:
        self._closing.set()
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def reset(self, mode: str = "ok") -> None:
        with self._lock:
            self.mode, self.requests, self._submits, self.cancelled = mode, [], 0, []
            self.queue_url = self.files_url = self.redirect_url = None
            self.chat_streams = []
            self.streamed = 0
            self.dripping.clear()

    # -- outputs ------------------------------------------------------------------------------------------------------
    def _file(self, data: bytes, suffix: str) -> str:
        name = f"{uuid.uuid4().hex}{suffix}"
        self.files[name] = (data, "image/png" if suffix == ".png" else "video/mp4")
        return f"{self.files_url or self.url}/files/{name}"

    def _output(self, kind: str, width: int, height: int, seed: int = 0) -> bytes:
        if self.mode == "malformed":
            return b"<html>not an output</html>"
        if self.mode == "huge-png" and kind == "image":
            return png_header_only(12000, 12000)
        return image_bytes(width, height, seed) if kind == "image" else video_bytes(width, height)

    def _job(self, kind: str, size: tuple[int, int], seed: int, answer_of) -> str:
        rid = uuid.uuid4().hex
        self.jobs[rid] = {"kind": kind, "size": size, "seed": seed, "answer_of": answer_of, "at": time.monotonic()}
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
                fake.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "json": body,
                                      "server": self.server.server_address[1]})

            def _stream(self, chunks, content_type: str, headers: dict | None = None):
                """A body made as it is sent: chunked, or with the headers' Content-Length; stops when the client
                hangs up."""
                self.protocol_version = "HTTP/1.1"
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Connection", "close")
                headers = dict(headers or {})
                chunked = "Content-Length" not in headers
                if chunked:
                    headers["Transfer-Encoding"] = "chunked"
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.close_connection = True
                try:
                    for chunk in chunks:
                        if fake._closing.is_set():
                            return
                        if chunked:
                            self.wfile.write(b"%x\r\n" % len(chunk))
                        self.wfile.write(chunk)
                        if chunked:
                            self.wfile.write(b"\r\n")
                        fake.streamed += len(chunk)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client hung up
                    pass

            def _drip(self, content_type: str):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                fake.dripping.set()
                for _ in range(60):  # two minutes at most
                    try:
                        self.wfile.write(b"\x89")
                        self.wfile.flush()
                    except OSError:
                        return
                    fake.streamed += 1
                    if fake._closing.wait(2.0):
                        return

            def _misbehave(self, kind: str) -> bool:
                """An output file in one of the misbehaving modes; False when the mode serves files normally."""
                if fake.mode == "drip":
                    self._drip(kind)
                elif fake.mode == "huge":
                    self._stream((ZEROS for _ in range(HUGE_BYTES // len(ZEROS))), kind)
                elif fake.mode == "huge-declared":
                    self._stream((ZEROS for _ in range(HUGE_BYTES // len(ZEROS))), kind, {"Content-Length": str(HUGE_BYTES)})
                elif fake.mode == "gzip-bomb":
                    self._stream(_gzip_zeros(HUGE_BYTES), kind, {"Content-Encoding": "gzip"})
                else:
                    return False
                return True

            def do_GET(self):
                self._record(None)
                path = urlparse(self.path).path
                if path.startswith("/api/models/"):
                    model = path[len("/api/models/"):]
                    if model not in fake.mapping:
                        return self._send(404, {"error": f"Repository {model} not found"})
                    task, provider_id, *named = fake.mapping[model]
                    return self._send(200, {"id": model, "_id": "x", "inferenceProviderMapping": {
                        (named[0] if named else "fal-ai"): {"status": "live", "providerId": provider_id, "task": task}}})
                if path.startswith("/files/"):
                    data, kind = fake.files[path[len("/files/"):]]
                    if self._misbehave(kind):
                        return None
                    return self._send(200, data, kind)
                parts = path.strip("/").split("/")
                if parts[0] == "q":  # fal queue: /q/{rid}/status or /q/{rid}
                    job = fake.jobs[parts[1]]
                    if len(parts) == 3:
                        held = fake.mode == "timeout" or time.monotonic() - job["at"] < fake.hold_s
                        status = "IN_PROGRESS" if held else "COMPLETED"
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
                if path.endswith("/chat/completions"):
                    return fake_chat.serve(self, fake, body)
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
                base = fake.queue_url or fake.url
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
