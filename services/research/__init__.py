"""Research: what researchers comparing models need, built on the one runner.

- `grids`: a declared run (prompts x 2-8 models x seeds x one settings axis) on one surface (text-to-image, or Remix /
  Advanced on one of your figures), quoted whole before it starts; every cell is its own paid request through the
  runner (a failed cell is refunded alone), kept in the database so a grid reopens after a restart.
- `grid_run`: runs a grid's cells in the background (services.runs.background), most expensive axis outermost.
- `prompt_sets`: curated and published prompt sets (presets/prompt_sets/) and visitors' own uploads, bounded.
- `export`: grids, votes and identity scores as a `datasets` dataset (save_to_disk, Parquet, push_to_hub).
- `arena`: blind pairwise battles (general and likeness), append-only votes with anti-gaming rules.
- `ratings`: Bradley-Terry ratings with confidence intervals (the method of LMArena's arena-rank).
"""
