"""CPU-side overhead of the app around a pipeline call, in one run (issue: performance harness, item 3).

    python bench/cpu_overhead.py [--repeats 9]

On a tiny SDXL declared as a local-folder entry (the real-weights path), it measures:
- app start to first answer: build services + UI, launch, first gradio_client answer from /models;
- cache hit: getting the already-loaded pipeline from the runtime;
- the raw pipeline call (the baseline every ratio is against);
- the same request through the service layer (policy, quote, reservation, record, PNG, capture);
- the same request through gradio_client against the launched app (queue, HTTP, file transfer).
Medians of alternating calls after warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from overhead import STEPS, make_entry  # noqa: E402
from pipelines.family import get_family  # noqa: E402
from pipelines.registry import Registry, load_registry  # noqa: E402
from pipelines.runtime import PipelineRuntime, RuntimeSettings, build_tiny  # noqa: E402
from pipelines.types import Task  # noqa: E402
from services.accounts.plans import load_plans
from services.config import AppSettings  # noqa: E402
from services.container import build_services  # noqa: E402
from services.creation.text import TextToImageParams  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(repeats: int, root: Path) -> list[tuple[str, float, float | None]]:
    from gradio_client import Client

    from ui.shell import build_app

    family = get_family("sdxl")
    entry = make_entry("sdxl", "sdxl", build_tiny(family, "sdxl", root / "models" / "sdxl"), 5.0)
    start = time.perf_counter()
    registry = Registry([*load_registry(), entry])
    runtime = PipelineRuntime(registry, RuntimeSettings(tiny_root=root / "unused", preview="forbid", device="cpu"))
    settings = AppSettings(data_dir=root / "data", preview="forbid", device="cpu", safety_backend="none")
    services = build_services(settings, registry=registry, runtime=runtime, heartbeat=False,
                              plans=load_plans().with_prices({entry.id: 1}))
    demo = build_app(services)
    demo.queue().launch(prevent_thread_lock=True, quiet=True, allowed_paths=[str(settings.outputs_dir)])
    try:
        client = Client(demo.local_url, verbose=False)
        client.predict(api_name="/models")
        startup_ms = (time.perf_counter() - start) * 1000

        session = client.predict(api_name="/session_start")
        account = services.identity.account(services.identity.verify(session["token"]))
        with services.db.begin() as conn:
            services.ledger.adjust(conn, account.id, 100_000, "bench", "benchmark credits")
        params = TextToImageParams(prompt="a lighthouse at dusk", model=entry.id, seed=7, steps=STEPS, guidance=5.0)
        _, request = services.text.build_request(params)
        pipe = runtime.pipeline(entry, Task.TEXT_TO_IMAGE)
        runner = family.runners[Task.TEXT_TO_IMAGE]

        def raw():
            runner(pipe, request, lambda done, total: None, None)

        def service():
            services.text.text_to_image(account, params, on_step=lambda done, total: None)

        def api():
            client.predict(prompt=params.prompt, model=entry.id, seed=7, steps=STEPS, guidance=5.0, token=session["token"],
                           api_name="/text_to_image")

        for fn in (raw, service, api):  # warm-up
            fn()
        cache_ms = median_ms(lambda: runtime.pipeline(entry, Task.TEXT_TO_IMAGE), max(repeats, 50))
        raw_t, service_t, api_t = [], [], []
        for _ in range(repeats):
            for fn, bucket in ((raw, raw_t), (service, service_t), (api, api_t)):
                t0 = time.perf_counter()
                fn()
                bucket.append(time.perf_counter() - t0)
        raw_ms = statistics.median(raw_t) * 1000
        service_ms = statistics.median(service_t) * 1000
        api_ms = statistics.median(api_t) * 1000
    finally:
        demo.close()
        services.close()
    return [
        ("app start to first answer", startup_ms, None),
        ("pipeline cache hit", cache_ms, cache_ms / raw_ms),
        (f"raw pipeline call (tiny SDXL 64x64, {STEPS} steps)", raw_ms, 1.0),
        ("through the service layer", service_ms, service_ms / raw_ms),
        ("through gradio_client (launched app)", api_ms, api_ms / raw_ms),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args.repeats, Path(tmp))
    print(f"CPU overhead around a pipeline call, median of {args.repeats} alternating calls, torch {torch.__version__}")
    print(f"{'measure':<48} {'ms':>10} {'x raw call':>11}")
    for name, ms, ratio in rows:
        print(f"{name:<48} {ms:>10.2f} {'' if ratio is None else f'{ratio:.3f}':>11}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
