"""How long a QA run of the presets takes (issue 29): runs `python -m services.qa` on the tiny offline preview and prints
the wall time, the per-family sum of case seconds and the slowest cases.

    python bench/qa_runtime.py [--presets all] [--model sdxl-base]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", default="all")
    parser.add_argument("--model", default="sdxl-base")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="qa-bench-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.setdefault("PLAYGROUND_TINY_DIR", str(ROOT / "data" / "tiny-models"))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "services.qa", "--presets", args.presets, "--model", args.model, "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    result = json.loads((out / "qa.json").read_text())
    families: dict[str, float] = {}
    for case in result["cases"]:
        families[case["family"]] = families.get(case["family"], 0.0) + case["seconds"]
    print(f"QA run ({args.presets}, {args.model}, {len(result['cases'])} cases, exit {done.returncode}): {wall:.1f} s wall")
    for family, seconds in families.items():
        print(f"  {family:8s} {seconds:7.1f} s in cases")
    for case in sorted(result["cases"], key=lambda c: -c["seconds"])[:5]:
        print(f"  slowest: {case['name']} {case['seconds']:.1f} s")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
