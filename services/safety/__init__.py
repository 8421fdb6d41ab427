"""Safety: the prompt `policy` (presets/safety.toml: lengths, members-only vocabulary, SFW-only surfaces, never-allowed
content), the `output` check (open_nsfw by default; NudeNet, a transformers classifier, or none) and `uploads`
hygiene (formats, sizes, decompression bombs, metadata stripping)."""
