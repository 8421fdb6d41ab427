"""The benchmarks keep running as the code changes (their numbers are read by people, not asserted)."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_overhead_benchmark_runs_and_prints_its_table(capsys):
    overhead = load("overhead")
    assert overhead.main(["--repeats", "1", "--families", "sdxl"]) == 0
    out = capsys.readouterr().out
    assert "service-layer overhead" in out and "tiny sdxl (64x64, 4 steps)" in out


def test_postprocess_benchmark_runs_and_prints_its_table(capsys):
    post = load("postprocess")
    assert post.main(["--repeats", "1", "--sizes", "256", "--batch-side", "64", "--batch-steps", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("old: Pillow default level, encode + metadata + store", "new: encode + metadata + store",
                "content-addressed store", "candidate: Pillow, level 1", "tiny sdxl", "tiny flux"):
        assert row in out, row


def test_cpu_overhead_benchmark_runs_and_prints_its_table(capsys):
    cpu = load("cpu_overhead")
    assert cpu.main(["--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("app start to first answer", "pipeline cache hit", "raw pipeline call", "through the service layer",
                "through gradio_client (launched app)", "of which building its 3 HTTP clients", "through gradio_client, one TLS context",
                "no-op endpoint"):
        assert row in out
    building = float(re.search(r"of which building its 3 HTTP clients \(CPU\)\s+([\d.]+)", out).group(1))
    assert building > 1, out  # a plain Client builds a TLS context per call (measured in the visitor's process)
    for label in ("one TLS context", r"plain Client\(url\)"):
        assert re.search(rf"^gradio_client round trip over the raw call, {label}: \+-?\d+ ms \((within|over) the target of \+60 ms\)$",
                         out, re.M), out


def test_gpu_latency_tiny_prints_every_model_and_mode(tmp_path, capsys):
    """The GPU harness's own code path with tiny configs on the CPU: every model x mode gets a row, measured
    or saying why not; plain rows carry every timing; the saved rows print the same table again."""
    gpu = load("gpu_latency")
    out = tmp_path / "rows.jsonl"
    assert gpu.main(["--tiny", "--warmup", "1", "--repeats", "1", "--steps", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = printed[printed.index("| model |"):]
    rows = {(cells[0], cells[1]): cells for cells in
            ([c.strip() for c in line.strip().strip("|").split("|")]
             for line in table.splitlines() if line.startswith("| ") and "---" not in line)
            if cells[0] != "model"}
    assert set(rows) == {(m, mode) for m in gpu.MODELS for mode in gpu.MODES}
    saved = {(r.model, r.mode): r for r in gpu.read_rows(out)}
    assert set(saved) == set(rows)
    for model in gpu.MODELS:
        plain = saved[(model, "plain")]
        assert plain.ok and plain.step_ms > 0 and plain.encode_ms > 0 and plain.decode_ms > 0
        assert plain.estimated and plain.gen_default_s > plain.gen_s  # 2 of the model's default steps were run
        assert rows[(model, "plain")][-1] == "1.00"
        assert saved[(model, "compile")].ok, f"{model}: compile must run on the CPU too"
        for mode in gpu.MODES:
            row = saved[(model, mode)]
            assert row.ok or row.note, f"{model}/{mode}: a row not run must say why"
    # what cannot run here says so instead of silently timing plain again
    assert "UNet2DConditionModel's attention does not go through" in table
    assert saved[("flux.1-dev", "step-cache")].note.startswith("ran the whole denoiser on")
    assert gpu.main(["--table", str(out)]) == 0
    assert capsys.readouterr().out.strip() == table.strip()


# Published parameter counts of the full-size components (the model cards and the checkpoints' sizes).
PUBLISHED = {
    ("flux.1-dev", "transformer"): 11_901_408_320,
    ("flux.1-dev", "text_encoder"): 123_060_480,  # CLIP ViT-L/14 text tower
    ("flux.1-dev", "text_encoder_2"): 4_762_310_656,  # T5 v1.1 XXL encoder
    ("sdxl-base", "unet"): 2_567_463_684,
    ("sdxl-base", "vae"): 83_653_863,
    ("sdxl-base", "text_encoder_2"): 694_659_840,  # OpenCLIP bigG text tower with projection
}
ROUGH = {  # billions, from the model names/cards
    ("z-image-turbo", "transformer"): 6.15,
    ("z-image-turbo", "text_encoder"): 4.02,  # Qwen3-4B without its (tied) LM head
    ("wan2.1-i2v-480p", "transformer"): 16.4,  # "14B" backbone + image cross-attention
    ("wan2.1-i2v-480p", "text_encoder"): 5.68,  # umt5-xxl encoder
    ("wan2.1-i2v-480p", "image_encoder"): 0.63,  # CLIP ViT-H/14 vision tower
}


def test_full_size_configs_have_the_published_sizes():
    gpu = load("gpu_latency")
    for (model, component), count in PUBLISHED.items():
        assert gpu.parameter_count(model, component) == count, (model, component)
    for (model, component), billions in ROUGH.items():
        assert abs(gpu.parameter_count(model, component) / 1e9 - billions) < 0.01 * billions, (model, component)
    assert gpu.parameter_count("flux.1-schnell", "transformer") < PUBLISHED[("flux.1-dev", "transformer")]  # no guidance embedder


def test_full_size_configs_fit_together_and_name_their_source():
    """Cross-component widths of the full configs agree (what a mistyped number would break on the GPU)."""
    from pipelines.registry import load_registry

    gpu = load("gpu_latency")
    registry = load_registry()
    for model in gpu.MODELS:
        spec = gpu.load_spec(model)
        assert registry.get(model).source.repo in spec["source"], model
        for name, comp in spec["components"].items():
            assert "tokenizer" in comp or comp["source"].startswith("https://huggingface.co/"), (model, name)
    cfg = {m: {n: gpu.component_config(c, False) for n, c in gpu.load_spec(m)["components"].items() if "config" in c}
           for m in gpu.MODELS}
    for flux in ("flux.1-dev", "flux.1-schnell"):
        c = cfg[flux]
        assert c["transformer"]["joint_attention_dim"] == c["text_encoder_2"]["d_model"]
        assert c["transformer"]["pooled_projection_dim"] == c["text_encoder"]["hidden_size"]
        assert c["transformer"]["in_channels"] == 4 * c["vae"]["latent_channels"]  # 2x2 packing
    s = cfg["sdxl-base"]
    assert s["unet"]["cross_attention_dim"] == s["text_encoder"]["hidden_size"] + s["text_encoder_2"]["hidden_size"]
    assert s["unet"]["projection_class_embeddings_input_dim"] == (
        6 * s["unet"]["addition_time_embed_dim"] + s["text_encoder_2"]["projection_dim"])
    z = cfg["z-image-turbo"]
    assert z["transformer"]["cap_feat_dim"] == z["text_encoder"]["hidden_size"]
    assert sum(z["transformer"]["axes_dims"]) == z["transformer"]["dim"] // z["transformer"]["n_heads"]
    w = cfg["wan2.1-i2v-480p"]
    assert w["transformer"]["text_dim"] == w["text_encoder"]["d_model"]
    assert w["transformer"]["image_dim"] == w["image_encoder"]["hidden_size"]
    assert w["transformer"]["in_channels"] == 2 * w["vae"]["z_dim"] + 4  # noise + first-frame latents + mask


def test_real_sizes_run_through_the_real_pipelines_on_tiny_widths(capsys):
    """The widths of the full configs are checked above; this checks the sizes: each image model's real call
    (1024x1024) through its pipeline, on tiny widths. (Wan's 832x480x81 takes about 2.5 minutes here, so it is run
    by hand: `python bench/gpu_latency.py --tiny --full-size --models wan2.1-i2v-480p --modes plain --steps 1`.)"""
    gpu = load("gpu_latency")
    images = ["flux.1-dev", "flux.1-schnell", "sdxl-base", "z-image-turbo"]
    assert gpu.main(["--tiny", "--full-size", "--models", *images, "--modes", "plain", "--warmup", "0",
                     "--repeats", "1", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    for model in images:
        assert f"| {model} | plain | 1024x1024 | 1/" in out, out


def test_grid_overhead_benchmark_runs_and_prints_its_ratio(capsys):
    grid = load("grid_overhead")
    assert grid.main(["--prompts", "1", "--seeds", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "ratio grid/single (as served)" in out and "overhead per cell" in out and "worker thread" in out


def test_load_benchmark_smoke_run_ends_with_exact_balances(tiny_root):
    """bench/load.py's smoke variant without Ray: two app instances (processes) on one SQLite file, 4 visitors through
    gradio_client, two local and two slow-provider requests; its last line gives the counts and "balances exact", and
    it stays within the 55 s it is given (else it exits 1)."""
    done = subprocess.run([sys.executable, "bench/load.py", "--visitors", "4", "--requests", "1", "--backend", "local",
                           "--provider-hold-s", "1", "--max-seconds", "55", "--tiny-dir", str(tiny_root)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    assert lines[-1] == "served 4 · failed 0 · refunded 0 · balances exact", done.stdout[-3000:]
    assert any(line.startswith("local ") for line in lines) and any(line.startswith("remote ") for line in lines)
