"""A grid's per-cell overhead against single requests (issue 28): the same cells (prompts x models x seeds at 1:1
1K, 1024x1024, the size users get) run once as single Text-mode requests through the runner and once as a grid
(background job, a database row per cell, progress), on the offline preview's tiny models. Prints both wall times,
the ratio (grid / singles) and the overhead per cell, measured in one run.

    python bench/grid_overhead.py [--prompts 2] [--seeds 2] [--models sdxl-base,playground-v2.5]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.config import AppSettings  # noqa: E402
from services.container import build_services  # noqa: E402
from services.creation.text import TextToImageParams  # noqa: E402

PROMPTS = ["a lighthouse keeper at dusk, portrait", "two hikers on a ridge at noon", "a baker holding a loaf, window light",
           "a violinist on a rainy street"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--models", default="sdxl-base,playground-v2.5")
    parser.add_argument("--repeats", type=int, default=2, help="alternate singles and grid this often; the best of each counts")
    args = parser.parse_args(argv)
    os.environ.setdefault("PLAYGROUND_TINY_DIR", str(ROOT / "data" / "tiny-models"))
    data = Path(tempfile.mkdtemp(prefix="grid-bench-"))
    services = build_services(AppSettings(data_dir=data, preview="force", device="cpu"), heartbeat=False)
    try:
        account = services.identity.start().account
        with services.db.begin() as conn:
            services.ledger.adjust(conn, account.id, 10_000, "bench", "grid overhead benchmark")
        models = args.models.split(",")
        prompts = PROMPTS[: args.prompts]
        seeds = list(range(1, args.seeds + 1))
        for model in models:  # warm: every model loaded once before either measurement
            services.text.text_to_image(account, TextToImageParams(prompt="warm up", model=model, seed=0))
        def all_singles() -> None:
            for model in models:
                for prompt in prompts:
                    for seed in seeds:
                        services.text.text_to_image(account, TextToImageParams(prompt=prompt, model=model, seed=seed))

        singles = served = grid = float("inf")
        for _ in range(args.repeats):  # alternated, so a busy machine slows all alike
            started = time.perf_counter()
            all_singles()
            singles = min(singles, time.perf_counter() - started)
            started = time.perf_counter()
            worker = threading.Thread(target=all_singles)  # as gradio serves a request: on a worker thread
            worker.start()
            worker.join()
            served = min(served, time.perf_counter() - started)
            spec = services.grids.declare(prompts=prompts, models=models, seeds=seeds)
            started = time.perf_counter()
            grid_id = services.grids.start(account, spec)["grid_id"]
            state = services.background.wait(account.id, grid_id, 3600)
            grid = min(grid, time.perf_counter() - started)
        cells = len(models) * len(prompts) * len(seeds)
        shown = services.grids.get(account, grid_id)
        size = services.catalogue.size(services.catalogue.get(models[0]), "1:1", "1K")
        print(f"grid overhead ({cells} cells, best of {args.repeats}, {size[0]}x{size[1]}, tiny preview models, {state['state']}, "
              f"{shown['counts']['done']} done)")
        print(f"  single requests, main thread    {singles:8.2f} s  ({singles / cells * 1000:.0f} ms per request)")
        print(f"  single requests, worker thread  {served:8.2f} s  ({served / cells * 1000:.0f} ms per request; how the app serves them)")
        print(f"  the same cells as one grid      {grid:8.2f} s  ({grid / cells * 1000:.0f} ms per cell)")
        print(f"  ratio grid/single (as served) {grid / served:8.3f}   overhead per cell {(grid - served) / cells * 1000:+.0f} ms")
        print(f"  ratio grid/single (main thread) {grid / singles:6.3f}   overhead per cell {(grid - singles) / cells * 1000:+.0f} ms")
        return 0 if state["state"] == "done" else 1
    finally:
        services.close()


if __name__ == "__main__":
    sys.exit(main())
