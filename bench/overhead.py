"""Service-layer overhead: one request through the runner (TextImages -> Runner) vs the raw pipeline call, same process.

    python bench/overhead.py [--repeats 15] [--families sdxl flux]

Tiny SDXL and FLUX.1 folders are built locally and declared as local-folder entries (the real-weights path,
not the preview), so both sides run the same pipeline at the same size; the service side adds the prompt
policy, validation, the quote, the atomic credit reservation and capture in SQLite (with the generation
record), the registry lookup, cache hit, spaces.GPU wrapper, PNG encoding with metadata and the
content-addressed write. The output safety check is off here (`--safety nudenet` adds it: about 40 ms).
Target: at most 10 ms per request (under 0.5 % of a real multi-second generation; on these 0.1-0.2 s tiny
calls it is a few per cent, printed as the ratio). Calls alternate so drift hits both sides alike.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from pipelines.family import get_family  # noqa: E402
from pipelines.registry import ModelEntry, Registry, load_registry  # noqa: E402
from pipelines.runtime import PipelineRuntime, RuntimeSettings, build_tiny  # noqa: E402
from pipelines.types import Task  # noqa: E402
from services.accounts.plans import load_plans  # noqa: E402
from services.config import AppSettings  # noqa: E402
from services.container import build_services  # noqa: E402
from services.creation.text import TextToImageParams  # noqa: E402

SIZE = 64
STEPS = 4
VARIANTS = {"sdxl": ("sdxl", "sdxl", 5.0), "flux": ("flux", "flux", 3.5)}


def make_entry(family: str, variant: str, folder: Path, guidance: float) -> ModelEntry:
    return ModelEntry.model_validate(
        {
            "id": f"bench-{variant}",
            "name": f"tiny {variant}",
            "family": family,
            "tasks": ["text-to-image"],
            "source": {"path": str(folder)},
            "defaults": {"steps": STEPS, "guidance": guidance},
            "sizes": {"1:1": {"1K": [SIZE, SIZE]}},
            "licence": {"name": "test"},
            "tiny": variant,
            "gpu": {"overhead_s": 10, "step_s": 1.0},
        }
    )


def measure(repeats: int, families: list[str], root: Path, safety: str = "none") -> list[dict]:
    rows = []
    for key in families:
        family_name, variant, guidance = VARIANTS[key]
        family = get_family(family_name)
        folder = build_tiny(family, variant, root / "models" / variant)
        entry = make_entry(family_name, variant, folder, guidance)
        registry = Registry([*load_registry(), entry])
        runtime = PipelineRuntime(registry, RuntimeSettings(tiny_root=root / "unused", preview="forbid", device="cpu"))
        settings = AppSettings(data_dir=root / f"data-{key}", preview="forbid", device="cpu", safety_backend=safety)
        services = build_services(settings, registry=registry, runtime=runtime, heartbeat=False,
                              plans=load_plans().with_prices({entry.id: 1}))
        account = services.identity.start(None, ip="127.0.0.1").account
        with services.db.begin() as conn:  # enough credits for every call
            services.ledger.adjust(conn, account.id, 100_000, "bench", "benchmark credits")
        service = services.text
        params = TextToImageParams(prompt="a lighthouse at dusk", model=entry.id, seed=7, steps=STEPS, guidance=guidance)
        _, request = service.build_request(params)
        pipe = runtime.pipeline(entry, Task.TEXT_TO_IMAGE)
        runner = family.runners[Task.TEXT_TO_IMAGE]

        def raw() -> None:
            runner(pipe, request, lambda done, total: None, None)

        def through_service() -> None:
            service.text_to_image(account, params, on_step=lambda done, total: None)

        for _ in range(3):  # warm-up: first calls allocate
            raw()
            through_service()
        raw_times, service_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            raw()
            raw_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            through_service()
            service_times.append(time.perf_counter() - start)
        raw_ms = statistics.median(raw_times) * 1000
        service_ms = statistics.median(service_times) * 1000
        overhead = service_ms - raw_ms
        rows.append(
            {
                "model": f"tiny {variant} ({SIZE}x{SIZE}, {STEPS} steps)",
                "raw_ms": raw_ms,
                "service_ms": service_ms,
                "overhead_ms": overhead,
                "ratio": service_ms / raw_ms,
                "ok": overhead <= 10.0,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--families", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--safety", default="none", choices=["none", "nudenet"], help="include the output check")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args.repeats, args.families, Path(tmp), args.safety)
    print(f"service-layer overhead, median of {args.repeats} alternating calls, CPU, torch {torch.__version__}, safety check: {args.safety}")
    print(f"{'model':<34} {'raw ms':>9} {'service ms':>11} {'overhead ms':>12} {'ratio':>7}  target (<=10 ms)")
    for r in rows:
        print(
            f"{r['model']:<34} {r['raw_ms']:>9.2f} {r['service_ms']:>11.2f} {r['overhead_ms']:>12.2f} "
            f"{r['ratio']:>7.3f}  {'met' if r['ok'] else 'MISSED'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
