"""A local stand-in for the Hugging Face Hub, on 127.0.0.1, speaking the calls huggingface_hub's `HfApi` makes to
create a dataset repository and commit files to it (read from huggingface_hub 2.4's hf_api.py, _commit_api.py and
lfs.py):

- POST /api/repos/create                                   create_repo (409 when it exists: exist_ok passes)
- POST /api/validate-yaml                                  create_commit checks a README.md's metadata first
- POST /api/{type}s/{repo}/preupload/{revision}            which files go as "regular" (inline) or "lfs"
- POST /{type}s/{repo}.git/info/lfs/objects/batch          LFS batch API ("basic" transfer): where to PUT each file
- PUT  /__lfs/upload/{oid}                                 the upload itself (checked against its sha256)
- POST /__lfs/verify                                       the LFS verify step
- POST /api/{type}s/{repo}/commit/{revision}               the NDJSON commit: header, "file" (base64), "lfsFile"

It checks the bearer token, keeps every request (`requests`), every request it does not know (`unknown`, answered
404), each repository's settings and committed files, and the commits. With `lfs=True` it answers "lfs" for the
binary suffixes the Hub stores in LFS (.parquet, .arrow, .png, ...) as the real Hub does; with `lfs=False`
everything is "regular". It does not speak Xet (huggingface_hub uses Xet for LFS files when hf_xet is installed:
a test that wants the LFS path sets huggingface_hub.constants.HF_HUB_DISABLE_XET), branches, pull requests,
deletions, copies, or any read API (repo_info, list files, downloads).
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".parquet", ".arrow", ".png", ".jpg", ".jpeg", ".webp", ".safetensors", ".bin", ".zip")


@dataclass
class Repo:
    repo_id: str
    type: str
    visibility: str | None
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)


class FakeHub:
    """`with FakeHub(token="hf_test") as hub:` then `HfApi(endpoint=hub.endpoint, token="hf_test")`."""

    def __init__(self, token: str = "hf_fake_token", *, lfs: bool = True, user: str = "tester"):
        self.token, self.lfs, self.user = token, lfs, user
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- the API ---------------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers, body: bytes) -> tuple[int, object]:
        with self._lock:
            self.requests.append((method, path))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "PUT" and path.startswith("/__lfs/upload/"):
            return self._lfs_put(parts[-1], body)  # a presigned storage URL: no Hub token on it
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "Invalid credentials in Authorization header"}
        if method == "POST" and path == "/api/repos/create":
            return self._create(json.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            return 200, {"errors": [], "warnings": []}
        if method == "POST" and path == "/__lfs/verify":
            payload = json.loads(body)
            ok = len(self.lfs_objects.get(payload["oid"], b"")) == payload["size"]
            return (200, {"oid": payload["oid"]}) if ok else (404, {"error": "object not uploaded"})
        if method == "POST" and len(parts) >= 6 and parts[0] == "api" and parts[4] in ("preupload", "commit"):
            repo_id = f"{parts[2]}/{parts[3]}"
            repo = self.repos.get(repo_id)
            if repo is None or parts[1] != f"{repo.type}s":
                return 404, {"error": f"Repository not found: {repo_id}"}
            if parts[4] == "preupload":
                return self._preupload(repo, json.loads(body))
            return self._commit(repo, "/".join(parts[5:]), body)
        if method == "POST" and path.endswith(".git/info/lfs/objects/batch"):
            return self._lfs_batch(json.loads(body))
        with self._lock:
            self.unknown.append((method, path + (f"?{query}" if query else "")))
        return 404, {"error": f"the fake hub does not know {method} {path}"}

    def _create(self, payload: dict) -> tuple[int, object]:
        namespace = payload.get("organization") or self.user
        repo_id = f"{namespace}/{payload['name']}"
        repo_type = payload.get("type") or "model"
        with self._lock:
            if repo_id in self.repos:
                return 409, {"error": "You already created this repo", "url": self._url(self.repos[repo_id])}
            repo = self.repos[repo_id] = Repo(repo_id, repo_type, payload.get("visibility"))
        return 200, {"url": self._url(repo), "name": repo_id, "id": repo_id}

    def _url(self, repo: Repo) -> str:
        prefix = "" if repo.type == "model" else f"{repo.type}s/"
        return f"{self.endpoint}/{prefix}{repo.repo_id}"

    def _preupload(self, repo: Repo, payload: dict) -> tuple[int, object]:
        files = []
        for item in payload["files"]:
            base64.b64decode(item["sample"], validate=True)
            lfs = self.lfs and item["path"].lower().endswith(LFS_SUFFIXES)
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": None})
        return 200, {"files": files, "commitOid": None}

    def _lfs_batch(self, payload: dict) -> tuple[int, object]:
        if payload.get("operation") != "upload" or payload.get("hash_algo", "sha256") != "sha256":
            return 422, {"message": "only sha256 uploads"}
        objects = []
        for item in payload["objects"]:
            oid, size = item["oid"], item["size"]
            entry = {"oid": oid, "size": size, "authenticated": True}
            if oid not in self.lfs_objects:
                entry["actions"] = {"upload": {"href": f"{self.endpoint}/__lfs/upload/{oid}"},
                                    "verify": {"href": f"{self.endpoint}/__lfs/verify"}}
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects}

    def _lfs_put(self, oid: str, body: bytes) -> tuple[int, object]:
        if hashlib.sha256(body).hexdigest() != oid:
            return 400, {"error": "content does not match its sha256"}
        with self._lock:
            self.lfs_objects[oid] = body
        return 200, {}

    def _commit(self, repo: Repo, revision: str, body: bytes) -> tuple[int, object]:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return 400, {"error": "the commit payload must start with a header"}
        files: dict[str, bytes] = {}
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file" and value.get("encoding") == "base64":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                content = self.lfs_objects.get(value["oid"])
                if content is None or len(content) != value["size"]:
                    return 400, {"error": f"LFS object {value['oid']} for {value['path']} was never uploaded"}
                files[value["path"]] = content
            else:
                return 400, {"error": f"the fake hub does not support commit operation {key!r}"}
        oid = hashlib.sha1(body).hexdigest()
        with self._lock:
            repo.files.update(files)
            repo.commits.append({"oid": oid, "revision": revision, "summary": lines[0]["value"]["summary"],
                                 "paths": sorted(files), "lfs": sorted(l["value"]["path"] for l in lines[1:]
                                                                      if l["key"] == "lfsFile")})
        return 200, {"commitUrl": f"{self._url(repo)}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    def log_message(self, *args) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, payload = self.hub.handle(self.command, url.path, url.query, headers, body)
        except Exception as error:  # a malformed request: say so, as the Hub would
            status, payload = 400, {"error": f"{type(error).__name__}: {error}"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("X-Error-Message", str(payload.get("error", ""))[:200])
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve
