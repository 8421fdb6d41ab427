"""How the Projects tab shows the service's dicts: picker choices, version badges and thumbnails, the banner and the
viewed version's details, the price line before New Version and the line after it, the members panel, the feed in
its two views, and the refine chat's turns. Pure functions: no events here."""
from __future__ import annotations

import html
from functools import lru_cache
from typing import Any, Callable

from PIL import Image, ImageDraw

from services.media.storage import OUTPUTS_URL

from .text import md

NO_SCENE = ""  # the scene picker's "no scene"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def credits(n: int) -> str:
    return plural(n, "credit")


def scene_choices(scenes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f"{sc['name']} ({plural(len(sc['shots']), 'shot')})", sc["id"]) for sc in scenes]


def project_choices(listing: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f"{p['name']}" + (" (owner)" if p["role"] == "owner" else "") + (" · archived" if p["archived"] else ""), p["id"])
            for p in listing]


def card_choices(listing: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(c["title"], c["id"]) for c in listing]


def ref_label(ref: dict[str, Any]) -> str:
    return f"{ref['name']} ({ref['kind']})"


def ref_choices(refs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(ref_label(r), r["id"]) for r in refs]


def members_md(project: dict[str, Any] | None, me: str, invite_link: str = "") -> str:
    """Who is in the project, and (to its owner) the invite link; your own member id for others to add you."""
    mine = f"Your member id (a project's owner adds you with it): `{me}`"
    if not project:
        return mine
    rows = [f"- {md(m['name'])} · {m['role']}" + (" · you" if m["account_id"] == me else f" · id `{m['account_id']}`")
            for m in project["members"]]
    text = f"**Members of {md(project['name'])}**\n" + "\n".join(rows)
    if project.get("invite"):
        text += (f"\n\n**Invite link** (anyone who opens it can join; share it only with your team):  \n`{invite_link or project['invite']}`")
    if project["archived"]:
        text += "\n\n_This project is archived: it is read-only until its owner restores it._"
    return text + "\n\n" + mine


def badges(v: dict[str, Any]) -> str:
    """A version's thumbnail caption: its number, review dot, star, uploaded and status."""
    parts = [f"v{v['number']}"]
    if v["review"] == "approved":
        parts.append("🟢 approved")
    elif v["review"] == "rejected":
        parts.append("🔴 rejected")
    if v["favourite"]:
        parts.append("★")
    if v["status"] == "uploaded":
        parts.append("📤 uploaded")
    elif v["status"] == "generating":
        parts.append("⏳ generating")
    elif v["status"] == "failed":
        parts.append("⚠️ failed")
    return " · ".join(parts)


@lru_cache(maxsize=4)
def placeholder(text: str) -> Image.Image:
    """A grey tile for a version without an image yet (generating) or without one at all (failed)."""
    image = Image.new("RGB", (256, 256), (226, 228, 233))
    draw = ImageDraw.Draw(image)
    box = draw.textbbox((0, 0), text)
    draw.text(((256 - box[2]) / 2, (256 - box[3]) / 2), text, fill=(70, 74, 84))
    return image


def thumbnails(versions: list[dict[str, Any]], path_of: Callable[[str], str]) -> list[tuple[Any, str]]:
    """The direction's versions under the image, oldest first, each with its badges."""
    items = []
    for v in versions:
        if v["file"]:
            image: Any = path_of(v["file"])
        else:
            image = placeholder("generating..." if v["status"] == "generating" else "failed: refunded")
        items.append((image, badges(v)))
    return items


def banner(card: dict[str, Any], numbers: dict[str, int]) -> str:
    """The version viewed; for a direction without versions yet, what New Version will start from."""
    if card["viewing"]:
        return f"**{md(card['banner'])}**"
    parent = card["direction"]["parent_version_id"]
    if parent:
        return (f"**“{md(card['direction']['name'])}” has no versions yet**: it was forked from v{numbers.get(parent, '?')}, "
                "whose image (shown) is its first ref. Press **New Version** to continue it; the other directions keep "
                "their versions (the strip below).")
    return "**No versions yet.** Write the prompt, check the price, and press **New Version**."


def viewed_md(version: dict[str, Any] | None, ref_names: dict[str, str], class_labels: dict[str, str],
              model_name: Callable[[str], str]) -> str:
    """What the viewed version ran with: the prompt as typed and the refined one, settings, refs, lineage."""
    if not version:
        return ""
    s = version["settings"]
    status = " · ".join(badges(version).split(" · ")[1:]) or "not reviewed"
    lines = [f"**v{version['number']}** · {status} · in “{md(version['direction']['name'])}”"]
    lines.append(f"**Prompt (as typed):** {md(version['prompt']) or '_empty_'}")
    if version["refined"] and version["refined"] != version["prompt"]:
        lines.append(f"**Refined prompt (what ran):** {md(version['refined'])}")
    if s.get("source") == "upload":
        lines.append(f"**Uploaded** image, {s.get('width')}×{s.get('height')} px")
    else:
        klass = class_labels.get(s.get("model_class", ""), s.get("model_class", "")).split(":")[0]
        lines.append(f"**Settings:** {md(s.get('resolution', ''))} · {md(s.get('aspect_ratio', ''))} · {md(klass)} → "
                     f"{md(model_name(s.get('model', '')))} ({md(s.get('task', ''))}) · seed {s.get('seed')}")
    refs = ", ".join(md(ref_names.get(r, "a removed ref")) for r in version["refs"]) or "none"
    lines.append(f"**Refs used:** {refs}")
    dropped = s.get("dropped_refs") or []
    if dropped:
        lines.append(f"**Left out (past the model's cap):** {', '.join(md(ref_names.get(r, 'a ref')) for r in dropped)}")
    if version["lineage"]:
        lines.append("**Lineage:** " + " ← ".join(f"v{p['number']}" for p in [{"number": version["number"]}, *version["lineage"]]))
    if version["status"] == "failed" and version.get("error"):
        lines.append(f"⚠️ {md(version['error'])}")
    return "  \n".join(lines)


def direction_choices(card: dict[str, Any], numbers: dict[str, int]) -> list[tuple[str, str]]:
    out = []
    for d in card["directions"]:
        parent = d["parent_version_id"]
        label = d["name"] + (f" (fork of v{numbers[parent]})" if parent in numbers else " (fork)" if parent else "")
        out.append((label, d["id"]))
    return out


def quote_md(quote: dict[str, Any], balance: str, own: set[str] = frozenset()) -> str:
    """The price of New Version, before it is clicked: per version × count, the model, the refs used (those not among the
    direction's `own` refs come from the card's scene) and left out."""
    line = (f"**New Version: {quote['count']} version{'s' if quote['count'] > 1 else ''} × {credits(quote['per_version'])} = "
            f"{credits(quote['total'])}** on {md(quote['model_name'])} ({md(quote['task'])}, {md(quote['resolution'])}, "
            f"{md(quote['aspect_ratio'])}) · each version is its own paid request, refunded if it fails")
    used = ", ".join(md(ref_label(r)) + ("" if r["id"] in own else " from the scene") for r in quote["refs"]) or "none"
    line += f"  \nRefs used: {used}"
    if quote["dropped"]:
        line += (f"  \n⚠️ Left out: {', '.join(md(ref_label(r)) for r in quote['dropped'])} — {md(quote['model_name'])} takes "
                 f"{quote['cap']} reference image{'s' if quote['cap'] != 1 else ''}; the fork's source, approved shots and the "
                 "newest are kept")
    return line + f"  \nYou have **{balance}**"


def new_version_label(quote: dict[str, Any] | None) -> str:
    return f"New Version ({credits(quote['total'])})" if quote else "New Version"


def after_run(versions: list[dict[str, Any]], charged: int, balance: str) -> str:
    done = [v for v in versions if v["status"] == "done"]
    failed = [v for v in versions if v["status"] == "failed"]
    line = f"Made {', '.join('v' + str(v['number']) for v in done) or 'no version'}: charged **{credits(charged)}**."
    for v in failed:
        line += f"  \n⚠️ v{v['number']} failed and was refunded: {md(v.get('error') or '')}"
    return line + f" You have **{balance}**."


def feed_summary(feed: dict[str, Any], what: str = "version") -> str:
    f = feed["filters"]
    shown = [name for name, on in (("approved", f["approved"]), ("mine", f["mine"])) if on]
    if f["search"]:
        shown.append(f"prompt contains “{md(f['search'])}”")
    return (f"**{feed['total']} {what}{'s' if feed['total'] != 1 else ''}**" + (f" · {', '.join(shown)}" if shown else "")
            + f" · page {feed['page']} of {feed['pages']}")


def feed_gallery(feed: dict[str, Any], path_of: Callable[[str], str]) -> list[tuple[str, str]]:
    """The compact view: each version's image, with its badge and status dot."""
    return [(path_of(item["file"]), f"v{item['number']}" + {"approved": " 🟢", "rejected": " 🔴"}.get(item["review"], " ⚪")
             + (" ★" if item["favourite"] else "") + (" · uploaded" if item["uploaded"] else "")) for item in feed["items"]]


def feed_cards(feed: dict[str, Any]) -> str:
    """The full view: each version as a card with its image, card title, prompt and status."""
    esc = html.escape
    if not feed["items"]:
        return '<div class="projects-feed-empty">Nothing matches these filters yet.</div>'
    rows = []
    for item in feed["items"]:
        status = {"approved": "🟢 approved", "rejected": "🔴 rejected"}.get(item["review"], "⚪ not reviewed")
        extras = (" · ★ favourite" if item["favourite"] else "") + (" · 📤 uploaded" if item["uploaded"] else "") + \
            (" · yours" if item["mine"] else "")
        refined = (f'<div><small>Refined: {esc(item["refined"])}</small></div>'
                   if item.get("refined") and item["refined"] != item["prompt"] else "")
        rows.append(
            f'<div class="projects-feed-card" style="display:flex;gap:12px;margin-bottom:12px;align-items:flex-start">'
            f'<img src="{OUTPUTS_URL}{esc(item["file"])}" width="128" alt="v{item["number"]}" style="border-radius:6px">'
            f'<div><div><b>{esc(item["title"])}</b> · v{item["number"]}</div><div>{status}{extras}</div>'
            f'<div>{esc(item["prompt"]) or "<i>no prompt</i>"}</div>{refined}</div></div>')
    return f'<div id="projects-feed-list">{"".join(rows)}</div>'


def refine_turns(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The refine chat as chatbot turns: each answer, then (collapsed: click to expand) the full prompt it proposes."""
    turns: list[dict[str, Any]] = []
    for m in state["messages"]:
        text = md(m["content"])
        if m["role"] == "user":
            turns.append({"role": "user", "content": text})
            continue
        turns.append({"role": "assistant", "content": text})
        if m.get("prompt"):
            turns.append({"role": "assistant", "content": md(m["prompt"]),
                          "metadata": {"title": "Full prompt (click to expand)", "status": "done"}})
    return turns


def refiner_md(state: dict[str, Any]) -> str:
    r = state["refiner"]
    who = (f"Answers come from the **{md(r['name'])}**, free: no language model runs on this deployment (with one, the "
           "chat goes through it)." if r["offline"] else f"Answers come from **{md(r['name'])}**: each costs {md(r['text'])}.")
    phase = ("Before the first version: pick suggestions for what the prompt leaves open." if state["phase"] == "before"
             else "After a version: ask for one change at a time (“closer”, “remove the hat”, “switch to profile angle”).")
    if state["read_only"]:
        phase = "The project is archived: the chat is read-only."
    return f"{who}  \n{phase}"
