"""How a request pays, in one place.

- `runner`: a paid run described as data (`PaidRun`: stages of model + task + typed request, the prompts to check,
  the settings a replay must match) and the one `Runner` that executes every description:
  policy -> validate -> quote -> reserve -> run each stage -> output check -> store files + metadata -> capture,
  refund on any failure. It is the only caller of the jobs transaction and of the pipeline runtime's `run`.
- `params`: the rules every request parameter follows (seed range, batch sizes, steps, guidance, strength), defined
  once and used by every surface and by the UI's component limits.
"""
