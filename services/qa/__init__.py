"""QA of the presets (issue 29): every preset through the real request path, checked, reported and compared.

Owns: enumerating presets as cases, loaded one entry at a time so a broken one is named (`presets`); running them as
a QA account through the surfaces and the one runner, free and recorded as QA (`run`); the checks (output exists at
the requested size, the composed prompt carries the preset's fragment, the output check's verdict, a face on real
figure outputs); the JSON and self-contained HTML reports and the difference between two runs (`report`); the runs a
QA session started in the background (`jobs`); and the command `python -m services.qa` (`__main__`).
Never imports gradio; pays through services.runs.runner only.
"""
from __future__ import annotations

from .presets import FAMILIES
from .report import diff, diff_text, html_page, summary
from .run import QARun

__all__ = ["FAMILIES", "QARun", "diff", "diff_text", "html_page", "summary"]
