"""QA reports: the JSON result, a self-contained HTML page (thumbnails embedded as base64 PNG), and the difference
between two runs (new failures, fixed, slower by more than a ratio, added and removed presets)."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

SLOWER_RATIO = 1.5  # a case counts as slower past this ratio of its previous seconds...
SLOWER_MIN_S = 0.5  # ...and at least this many seconds slower (tiny timings jitter)


def write_json(result: dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def summary(result: dict[str, Any]) -> str:
    return (f"QA {result['model']} ({', '.join(result['presets'])}): {result['passed']} passed, {result['failed']} failed, "
            f"{result['skipped']} skipped in {result['seconds']:.1f} s")


def body(result: dict[str, Any]) -> str:
    """The report as an HTML fragment (what the QA tab shows in gr.HTML); `html_page` wraps it as a page."""
    esc = html.escape
    rows = []
    for case in result["cases"]:
        image = (f'<img alt="{esc(case["name"])}" src="data:image/png;base64,{case["thumbnail"]}" width="72">'
                 if case.get("thumbnail") else "")
        checks = ", ".join(f"{k}: {v}" for k, v in (case.get("checks") or {}).items())
        colour = {"pass": "#1b7f3b", "fail": "#b3261e", "skip": "#7a6a00"}[case["status"]]
        rows.append(
            f'<tr class="qa-{case["status"]}"><td>{image}</td><td><b>{esc(case["name"])}</b><br><small>{esc(case["kind"])}</small></td>'
            f'<td style="color:{colour};font-weight:bold">{case["status"].upper()}</td><td>{case["seconds"]:.2f}</td>'
            f'<td><small>{esc(case.get("prompt") or "")}</small></td><td><small>{esc(checks)}</small></td>'
            f'<td style="color:#b3261e"><small>{esc(case.get("error") or "")}</small></td></tr>'
        )
    head = (f'<h2>{esc(summary(result))}</h2><p>Account: {esc(result["account_kind"])} (nothing charged). '
            f'Presets folder: <code>{esc(result["presets_dir"])}</code>. Face checks run only on real weights, never on the offline preview.</p>')
    table = ('<table border="1" cellspacing="0" cellpadding="4" style="border-collapse:collapse;font-family:sans-serif;font-size:13px">'
             '<tr><th>output</th><th>preset</th><th>result</th><th>s</th><th>composed prompt</th><th>checks</th><th>error</th></tr>'
             + "".join(rows) + "</table>")
    return f'<div class="qa-report">{head}{table}</div>'


def html_page(result: dict[str, Any]) -> str:
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(summary(result))}</title></head>'
            f'<body style="font-family:sans-serif">{body(result)}</body></html>')


def write_html(result: dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(result), encoding="utf-8")
    return path


def diff(previous: dict[str, Any], current: dict[str, Any], ratio: float = SLOWER_RATIO) -> dict[str, list]:
    """What changed since `previous`: by case name."""
    before = {c["name"]: c for c in previous["cases"]}
    now = {c["name"]: c for c in current["cases"]}
    changes: dict[str, list] = {"new_failures": [], "fixed": [], "slower": [], "added": [], "removed": []}
    for name, case in now.items():
        old = before.get(name)
        if old is None:
            changes["added"].append(name)
            if case["status"] == "fail":
                changes["new_failures"].append(name)
            continue
        if case["status"] == "fail" and old["status"] != "fail":
            changes["new_failures"].append(name)
        elif case["status"] != "fail" and old["status"] == "fail":
            changes["fixed"].append(name)
        if (case["status"] == "pass" and old["status"] == "pass" and old["seconds"] > 0
                and case["seconds"] > old["seconds"] * ratio and case["seconds"] - old["seconds"] >= SLOWER_MIN_S):
            changes["slower"].append(f"{name} ({old['seconds']:.2f} s -> {case['seconds']:.2f} s)")
    changes["removed"] = sorted(set(before) - set(now))
    return changes


def diff_text(changes: dict[str, list]) -> str:
    lines = []
    for key, title in (("new_failures", "New failures"), ("fixed", "Fixed"), ("slower", "Slower"), ("added", "Added presets"),
                       ("removed", "Removed presets")):
        items = changes.get(key) or []
        lines.append(f"{title}: {len(items)}")
        lines += [f"  {item}" for item in items]
    return "\n".join(lines)
