"""HTTP routes around the gradio app (an ASGI middleware given to gradio's FastAPI app at launch):

- `/outputs/<name>`: generated files by their content-addressed name, so API results carry app-relative URLs and
  never a server path;
- `/gradio_api/upload`: only the image types the app uses and character card files (JSON, CHARX), sniffed from the
  bytes, not the file name, and a bounded
  upload volume per client network per hour (presets/safety.toml [uploads]); everything else is refused before
  gradio writes a byte to its temp folder.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from services.accounts.network import grant_key
from services.container import Services
from services.creation.characters.card_reading import sniff_card
from services.media.storage import OUTPUT_NAME, OUTPUTS_URL as OUTPUTS_PREFIX
from services.safety.uploads import sniff_format

UPLOAD_SUFFIX = "/gradio_api/upload"


class UploadBudget:
    """Bytes and files uploaded per client network in the current hour."""

    def __init__(self, max_bytes: int, max_files: int, clock=time.monotonic):
        self.max_bytes, self.max_files, self.clock = max_bytes, max_files, clock
        self._used: dict[str, tuple[float, int, int]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, size: int, files: int) -> str | None:
        """Count an upload against the key's hour; a refusal message when it would go over."""
        with self._lock:
            start, used_bytes, used_files = self._used.get(key, (self.clock(), 0, 0))
            if self.clock() - start > 3600:
                start, used_bytes, used_files = self.clock(), 0, 0
            if used_files + files > self.max_files or used_bytes + size > self.max_bytes:
                wait = max(1, int(3600 - (self.clock() - start)) // 60)
                return (f"Upload limit reached for your network ({self.max_files} files or {self.max_bytes // 1_000_000} MB "
                        f"an hour); try again in about {wait} min.")
            self._used[key] = (start, used_bytes + size, used_files + files)
            return None


class PlaygroundRoutes:
    def __init__(self, app, services: Services):
        self.app = app
        self.services = services
        limits = services.safety_file.uploads
        self.limits = limits
        self.budget = UploadBudget(limits.per_network_bytes_per_hour, limits.per_network_files_per_hour)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope.get("path", "")
            if path.startswith(OUTPUTS_PREFIX) and scope["method"] in ("GET", "HEAD"):
                return await self._output(path[len(OUTPUTS_PREFIX):])(scope, receive, send)
            if path.endswith(UPLOAD_SUFFIX) and scope["method"] == "POST":
                return await self._upload(scope, receive, send)
        return await self.app(scope, receive, send)

    def _output(self, name: str) -> Response:
        if not OUTPUT_NAME.match(name):
            return JSONResponse({"detail": "Not found"}, status_code=404)
        try:
            path = self.services.store.path(name)
        except ValueError:
            return JSONResponse({"detail": "Not found"}, status_code=404)
        if not path.is_file():
            return JSONResponse({"detail": "Not found"}, status_code=404)
        return FileResponse(path, media_type="video/mp4" if name.endswith(".mp4") else "image/png",
                            headers={"Cache-Control": "private, max-age=86400"})

    def _client(self, scope) -> str:
        headers = Headers(scope=scope)
        peer = (scope.get("client") or ("", 0))[0]
        return grant_key(self.services.network.client_address(peer, headers.get("x-forwarded-for")))

    async def _upload(self, scope, receive, send):
        headers = Headers(scope=scope)
        declared = int(headers.get("content-length") or 0)
        cap = self.limits.max_bytes + 64_000  # one file at the size limit, plus the multipart framing
        if declared > cap:
            return await _refuse(413, f"Uploads are limited to {self.limits.max_bytes // 1_000_000} MB.", scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > cap:
                return await _refuse(413, f"Uploads are limited to {self.limits.max_bytes // 1_000_000} MB.", scope, receive, send)

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, replay).form(max_files=20, max_fields=20)
        except Exception:
            return await _refuse(400, "That upload could not be read; send a multipart form with the file.", scope, receive, send)
        files = [v for _, v in form.multi_items() if hasattr(v, "filename")]
        try:
            for upload in files:
                if (upload.size or 0) > self.limits.max_bytes:
                    return await _refuse(413, f"{upload.filename} is over {self.limits.max_bytes // 1_000_000} MB, the upload limit.",
                                         scope, receive, send)
                head = await upload.read(16)
                kind = sniff_format(head)
                if kind not in self.limits.formats and sniff_card(head) is None:
                    shown = kind or "not an image"
                    return await _refuse(415, f"{upload.filename} is {shown}; only {', '.join(self.limits.formats)} images "
                                              "(and JSON or CHARX character cards) are accepted.", scope, receive, send)
        finally:
            await form.close()
        refused = self.budget.take(self._client(scope), len(body), len(files))
        if refused:
            return await _refuse(429, refused, scope, receive, send)
        return await self.app(scope, replay, send)


async def _refuse(status: int, message: str, scope, receive, send) -> Any:
    response = JSONResponse({"detail": message, "error": message}, status_code=status)
    return await response(scope, receive, send)


def public_view(value: Any, services: Services) -> Any:
    """An API result or settings JSON as clients see it: generated files, by path or by the relative name records
    keep (a stage's start frame, a start image), become their /outputs/ URL, and no other server path of the data
    directory appears (only its file name)."""
    outputs = str(services.store.root.resolve())
    data = str(services.settings.data_dir.resolve())

    def view(v):
        if isinstance(v, str):
            if OUTPUT_NAME.match(v):
                return OUTPUTS_PREFIX + v
            if v.startswith(outputs + "/"):
                return OUTPUTS_PREFIX + v[len(outputs) + 1:]
            if data in v:
                return re.sub(re.escape(data) + r"/[^\s'\"]*/", "", v).replace(data, "")
            return v
        if isinstance(v, dict):
            # a "path" key would read as a file to download for gradio_client; the value is a URL now anyway
            return {("url" if k == "path" else k): view(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [view(x) for x in v]
        return v

    return view(value)
