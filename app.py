"""Composition root: parse flags, build services and UI, launch. No model code lives here."""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import tempfile
from pathlib import Path

from services.config import AppSettings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Character Playground (Gradio)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or 7860))
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    parser.add_argument("--data-dir", default=None, help="where records, outputs and tiny models live (default: /data or ./data)")
    parser.add_argument("--offline-preview", action="store_true", help="run every model on its tiny random preview")
    parser.add_argument("--mcp", action="store_true",
                        help="also serve the public endpoints as MCP tools at /gradio_api/mcp/ (default: GRADIO_MCP_SERVER)")
    return parser.parse_args(argv)


def create(settings: AppSettings):
    """Build the Blocks app and the launch options for these settings."""
    from starlette.middleware import Middleware

    from services.container import build_services
    from ui.shell import build_app
    from ui.web import PlaygroundRoutes

    services = build_services(settings)
    settings.outputs_dir.mkdir(parents=True, exist_ok=True)
    # Proxy trust is the app's decision (services.accounts.network): the web server must not rewrite the client
    # address from X-Forwarded-For itself (uvicorn trusts loopback by default).
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    # Gradio's temp folder (uploads, copies of outputs it serves) lives outside the data dir, so no server path
    # of the data dir reaches a client; it is swept every few minutes.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / "character-playground" / _digest(settings.data_dir)))
    uploads = services.safety_file.uploads
    demo = build_app(services)
    launch_options = {
        "max_threads": worker_threads(demo),
        "allowed_paths": [str(settings.outputs_dir)],
        "max_file_size": uploads.max_bytes,  # gradio answers 413 above it
        "run_history": False,
        "app_kwargs": {"middleware": [Middleware(PlaygroundRoutes, services=services)]},
    }
    return demo, launch_options, services


READ_WORKERS = 40  # gradio's own default worker count, kept free for reads, quotes and polls


def worker_threads(demo) -> int:
    """Gradio runs at most `max_threads` events at once across all endpoints (its queue's workers and its thread
    limiter). A generation endpoint runs as many calls at once as there are run slots, and a call waiting for a slot
    holds a worker; so that reads and quotes never wait behind generations, the workers are the sum of every bounded
    group's limit (the generation endpoints) plus READ_WORKERS for everything else."""
    limits: dict[str, int] = {}
    for fn in demo.fns.values():
        if isinstance(fn.concurrency_limit, int):  # "default" (reads) and None (quick starts and polls) are not counted
            limits[fn.concurrency_id] = min(limits.get(fn.concurrency_id, fn.concurrency_limit), fn.concurrency_limit)
    return sum(limits.values()) + READ_WORKERS


def _digest(path: Path) -> str:
    return hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:12]


def startup_banner(services) -> str:
    """The block `python app.py` prints on stdout before serving: whether the offline preview is on (and why), the
    output safety check and the face engine in use. Nothing is loaded to say it."""
    return "\n".join([
        "Character Playground",
        f"  offline preview: {_preview_line(services)}",
        f"  safety check:    {_safety_line(services.safety)}",
        f"  face engine:     {_face_line(services.faces)}",
    ])


def announce(services) -> None:
    print(startup_banner(services), flush=True)


def _preview_line(services) -> str:
    runtime = services.runtime
    local = [entry for entry in services.registry if not entry.is_remote]
    noise = f"their outputs are noise from tiny random models (built on first use in {runtime.settings.tiny_root})"
    mode = runtime.settings.preview
    if mode == "force":
        return f"ON for all {len(local)} local models (forced by --offline-preview or PLAYGROUND_PREVIEW=force); {noise}"
    status = {entry.id: runtime.status(entry) for entry in local}
    if mode == "forbid":
        missing = [model for model, s in status.items() if not s["runnable"]]
        refused = f"; no weights for {', '.join(missing)}: requests for them are refused" if missing else ""
        return f"OFF (PLAYGROUND_PREVIEW=forbid){refused}"
    previewed = [model for model, s in status.items() if s["preview"]]
    if not previewed:
        return f"OFF: all {len(local)} local models have real weights (on this machine, or downloaded on first use)"
    downloads = runtime.settings.allow_downloads
    why = ("their weights are not on this machine and downloads are off "
           + ("(PLAYGROUND_ALLOW_DOWNLOADS=0)" if downloads is False else "(no GPU here; PLAYGROUND_ALLOW_DOWNLOADS=1 allows them)"))
    which = "all" if len(previewed) == len(local) else f"{len(previewed)} of"
    named = "" if len(previewed) == len(local) else f" ({', '.join(previewed)})"
    return f"ON for {which} {len(local)} local models{named}: {why}; {noise}"


# What the terminal says of the known output checks (services/safety/output.py); any other by its name.
SAFETY_NOTES = {
    "opennsfw": "open_nsfw's ONNX classifier, offline",
    "nudenet": "NudeNet's ONNX detector, offline",
}


def _safety_line(checker) -> str:
    name = getattr(checker, "name", type(checker).__name__)
    if name == "none":
        return "none: outputs are not checked and are recorded as unchecked"
    note = getattr(checker, "source", None) if name == "classifier" else SAFETY_NOTES.get(name)
    return f"{name} ({note})" if note else name


def _face_line(engine) -> str:
    if engine is None:
        return "none: identity features are off (set PLAYGROUND_FACE_PACK to a local insightface model pack)"
    name = getattr(engine, "name", type(engine).__name__)
    pack = getattr(engine, "pack_dir", None)
    if pack is None:
        return name
    pack = Path(pack).expanduser()
    found = pack.is_dir() and any(pack.glob("*.onnx"))
    return f"{name} (pack {pack})" + ("" if found else ": no *.onnx files there, identity features will fail")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = AppSettings.from_env(data_dir=args.data_dir, preview="force" if args.offline_preview else None)
    except ValueError as exc:  # a setting the deployer must change: say which and why, without a traceback
        raise SystemExit(f"Cannot start: {exc}") from None
    demo, launch_options, services = create(settings)
    announce(services)
    try:
        demo.queue(default_concurrency_limit=2).launch(
            server_name=args.host, server_port=args.port, share=args.share,
            mcp_server=True if args.mcp else None,  # None: gradio reads GRADIO_MCP_SERVER (the Space setting)
            **launch_options
        )
    finally:
        services.close()


if __name__ == "__main__":
    main()
