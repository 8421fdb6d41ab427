"""python -m services.qa --model ID --presets all|figures|images|video|loras|models [--out DIR] [--against PREVIOUS.json]
[--presets-dir DIR]: a QA run on its own data folder (offline preview unless --real), JSON + HTML written to --out,
exit status 1 on any failure."""
from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from . import report  # noqa: E402
from .presets import DEFAULT_PRESETS_DIR, FAMILIES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.qa", description="Run every preset through the real request path.")
    parser.add_argument("--model", default="sdxl-base", help="the image model the figure and image presets run on")
    parser.add_argument("--presets", default="all", help=f"all, or one or more (comma-separated) of {', '.join(FAMILIES)}")
    parser.add_argument("--out", default="qa-out", help="folder for qa.json and qa.html")
    parser.add_argument("--against", help="a previous run's JSON: print what changed")
    parser.add_argument("--presets-dir", default=str(DEFAULT_PRESETS_DIR), help="the presets folder to check")
    parser.add_argument("--data-dir", help="the app data folder (default: a temporary one; tiny models go to PLAYGROUND_TINY_DIR)")
    parser.add_argument("--real", action="store_true", help="use real weights where present (default: the tiny offline preview)")
    parser.add_argument("--slower", type=float, default=report.SLOWER_RATIO, help="the ratio past which a case is 'slower'")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    from services.config import AppSettings
    from services.container import build_services

    from .run import QARun

    families = FAMILIES if args.presets == "all" else tuple(f.strip() for f in args.presets.split(",") if f.strip())
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        parser.error(f"--presets: {unknown or args.presets!r} not in all, {', '.join(FAMILIES)}")
    out = Path(args.out)
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="qa-data-"))
    admin = secrets.token_urlsafe(32)
    settings = AppSettings(data_dir=data_dir, preview="auto" if args.real else "force", admin_secret=admin, device="cpu" if not args.real else None)
    services = build_services(settings, heartbeat=False)
    try:
        account = services.identity.start(admin_key=admin).account
        last = [0.0]

        def progress(done: int, total: int, name: str) -> None:
            if time.perf_counter() - last[0] > 5 or done == total:
                last[0] = time.perf_counter()
                print(f"[{done}/{total}] {name}", flush=True)

        result = QARun(services, account, args.model, families, Path(args.presets_dir), progress).run()
    finally:
        services.close()
    report.write_json(result, out / "qa.json")
    report.write_html(result, out / "qa.html")
    for case in result["cases"]:
        if case["status"] == "fail":
            print(f"FAIL {case['name']}: {case['error']}")
    print(report.summary(result))
    print(f"Wrote {out / 'qa.json'} and {out / 'qa.html'}")
    if args.against:
        print(f"Changes since {args.against}:")
        print(report.diff_text(report.diff(report.read_json(Path(args.against)), result, args.slower)))
    print(f"Total time: {time.perf_counter() - started:.1f} s")
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
