"""User text in Markdown renders as typed: quotes stay quotes, markup and links stay inert."""
from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

from ui.text import md


def rendered(text: str) -> str:
    return MarkdownIt().render(md(text))


def test_quotes_render_as_typed():
    typed = "Wind's turning, \"aboard\"? 5 > 3 & 2 < 4"
    shown = html.unescape(re.sub(r"<[^>]+>", "", rendered(typed))).strip()  # what a browser displays
    assert shown == typed


def test_markup_stays_text():
    out = rendered("**bold** <b>x</b> [l](http://127.0.0.1/x) ![i](http://127.0.0.1/i.png)")
    assert "<strong>" not in out and "<b>" not in out and "<a " not in out and "<img" not in out
