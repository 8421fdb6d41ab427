"""How the Chat tab shows a conversation (services.chats' state dict): the messages as chatbot turns, the challenge bars,
the model and persona pickers' choices, the price line and the offline-preview note. Pure functions: no events here."""
from __future__ import annotations

import html
import re
import time
from typing import Any, Callable

from .text import md

NO_PERSONA = -1  # the persona picker's value for "no persona"
# Characters that would turn a chat line into a link, an image, a heading or raw HTML; emphasis (*, _) stays, since
# role-play writes actions in it.
_LINKY = re.compile(r"([\\`\[\]()!#|~<>])")


def chat_text(text: str) -> str:
    """A message as chatbot Markdown: line breaks and *emphasis* kept; no HTML, link, remote image or heading."""
    escaped = _LINKY.sub(r"\\\1", str(text or ""))
    return escaped.replace("://", "&#58;//").replace("www.", "www&#46;")


def credits(n: int) -> str:
    return f"{n} credit{'s' if n != 1 else ''}"


def turns(state: dict[str, Any], path_of: Callable[[str], str]) -> list[dict[str, Any]]:
    """The stored messages as chatbot turns: replies and your messages as they are, pictures inline with their scene,
    notices (refunds, unlocked challenges) as boxed notes."""
    shown = []
    for m in state["messages"]:
        if m["role"] == "image" and m.get("file"):
            shown.append({"role": "assistant", "content": [{"path": path_of(m["file"]), "alt_text": m["content"]},
                                                            f"📷 _{chat_text(m['content'])}_"]})
        elif m["role"] == "notice":
            unlocked = "unlocked" in (m.get("meta") or {})
            shown.append({"role": "assistant", "content": chat_text(m["content"]),
                          "metadata": {"title": "🏆 Challenge complete" if unlocked else "ℹ️ Notice"}})
        elif m["role"] in ("user", "assistant"):
            shown.append({"role": m["role"], "content": chat_text(m["content"])})
    return shown


def challenges_html(state: dict[str, Any] | None) -> str:
    """One progress bar per challenge: its goal and hint, percent, what unlocked at 100 %, and the judge that scored."""
    if not state or not state["challenges"]:
        return ""
    esc = html.escape
    rows = []
    for i, c in enumerate(state["challenges"]):
        done = c["unlocked"]
        hint = f'<div class="chat-hint"><small>Hint: {esc(c["hint"])}</small></div>' if c.get("hint") else ""
        unlocked = f'<div class="chat-unlocked">🏆 Unlocked: {esc(c["unlocked_behaviour"] or "")}</div>' if done else ""
        rows.append(f'<div class="chat-challenge" id="chat-challenge-{i}" style="margin-bottom:10px">'
                    f'<div><b>Challenge {i + 1}:</b> {esc(c["goal"])}</div>{hint}'
                    f'<progress value="{int(c["progress"])}" max="100" style="width:75%;height:14px"></progress> '
                    f'<span class="chat-percent"><b>{int(c["progress"])} %</b></span>{unlocked}</div>')
    judge = f'<div><small>Judge: {esc(state["judge"])}</small></div>'
    return f'<div id="chat-challenge-bars"><div><b>Challenges</b></div>{"".join(rows)}{judge}</div>'


def model_choices(state: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for m in state["models"]:
        label = f"{m['name']} · {credits(m['price'])} per message"
        if m["preview"]:
            label += " · offline preview"
        if not m["runnable"]:
            label += " · unavailable here"
        out.append((label, m["id"]))
    return out


def persona_choices(state: dict[str, Any]) -> list[tuple[str, int]]:
    return [("No persona (you are yourself)", NO_PERSONA)] + [(name or f"Persona {i + 1}", i) for i, name in enumerate(state["personas"])]


def conversation_choices(listing: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f"{c['title']} · {c['turns']} turn{'s' if c['turns'] != 1 else ''} · "
             f"{time.strftime('%d %b %H:%M', time.gmtime(c['updated_at']))}", c["id"]) for c in listing]


def preview_note(state: dict[str, Any] | None) -> str:
    if not state or not state["model"]["preview"]:
        return ""
    return (f"⚠️ **Offline preview: replies are noise.** {md(state['model']['name'])} has no weights on this machine, so a "
            "tiny random model of the same architecture answers: its words mean nothing. Prices, streaming, challenges "
            "and pictures work as they will with real weights.")


def price_line(state: dict[str, Any], quote: dict[str, Any], balance: str) -> str:
    """The price of what Send would do now (a reply, or a picture when the message asks for one), before it runs."""
    if quote["kind"] == "picture":
        what = f"**Next message: {credits(quote['price'])}** (it asks for a picture, so a picture answers it)"
    else:
        what = f"**Next message: {credits(quote['price'])}** (a reply from {md(state['model']['name'])})"
    return f"{what} · 📷 Picture: {credits(state['price']['picture'])} · you have **{balance}**"


def picture_label(state: dict[str, Any] | None) -> str:
    return f"📷 Picture ({credits(state['price']['picture'])})" if state else "📷 Picture"


def after_run(result: dict[str, Any], balance: str) -> str:
    """The line under the chat once a turn ran: what it cost, the balance after, and anything left out of the context."""
    if result.get("withheld"):
        return f"The reply was withheld ({md(result['withheld'])}) and refunded: nothing was charged. You have **{balance}**."
    what = "the picture" if result.get("picture") else "this reply"
    line = f"Charged **{credits(result.get('charged', 0))}** for {what}. You have **{balance}**."
    if result.get("left_out_turns"):
        line += (f" The {result['left_out_turns']} oldest turn(s) did not fit the model's window and were left out of "
                 "what it read (not summarised).")
    return line
