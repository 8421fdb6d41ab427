"""User-provided text (names, titles, prompts, profile fields, reasons) shown inside Markdown is shown as text: HTML
is escaped, every Markdown control character is backslash-escaped, and URLs are defused so no link or remote image
can come out of it."""
from __future__ import annotations

import html
import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>:])")


def md(text: object) -> str:
    """`text` as literal Markdown: it renders exactly as typed, with no markup, link or image."""
    # quote=False: an entity for ' or " (&#x27;) would have its "#" escaped below and show as typed; quotes are
    # harmless outside attributes, and Markdown text is never an attribute
    escaped = html.escape(str(text), quote=False)
    escaped = _MARKDOWN.sub(r"\\\1", escaped)
    # autolinks ("https://...", "www.example.com") need the bare characters; an entity keeps them visible but inert
    escaped = escaped.replace("\\:", "&#58;").replace("www\\.", "www&#46;")
    return escaped.replace("\n", " ")
