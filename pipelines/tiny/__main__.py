"""Build every tiny preview model: `python -m pipelines.tiny [--out DIR] [--force] [variant ...]`."""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..family import families
from ..runtime import build_tiny


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.tiny", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/tiny-models"), help="folder to write variants into")
    parser.add_argument("--force", action="store_true", help="rebuild variants that already exist")
    parser.add_argument("variants", nargs="*", help="variants to build (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    builders = {v: f for f in families().values() for v in f.tiny_builders}  # variant -> family
    unknown = set(args.variants) - set(builders)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(sorted(builders))}")
    for variant in args.variants or sorted(builders):
        folder = args.out / variant
        if (folder / builders[variant].marker).exists() and not args.force:
            logging.info("%-22s exists in %s", variant, folder)
            continue
        start = time.perf_counter()
        build_tiny(builders[variant], variant, folder)
        logging.info("%-22s built in %.1f s", variant, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
