"""The benchmarks keep running as the code changes (their numbers are read by people, not asserted)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_overhead_benchmark_runs_and_prints_its_table(capsys):
    overhead = load("overhead")
    assert overhead.main(["--repeats", "1", "--families", "sdxl"]) == 0
    out = capsys.readouterr().out
    assert "service-layer overhead" in out and "tiny sdxl (64x64, 4 steps)" in out


def test_cpu_overhead_benchmark_runs_and_prints_its_table(capsys):
    cpu = load("cpu_overhead")
    assert cpu.main(["--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("app start to first answer", "pipeline cache hit", "raw pipeline call", "through the service layer",
                "through gradio_client"):
        assert row in out
