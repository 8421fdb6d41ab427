"""The public character Catalogue (no sign-in needed: verified public characters, search by name and tag, open an
unlisted one by its link id, galleries, Photo Album unlock, card download). Moderation is in moderation.py."""
from __future__ import annotations

import time

import gradio as gr

from services.container import Services

from .errors import clicked, user_errors
from .session import SessionUI, account_for, bar_text, optional_account
from .text import md


def detail_text(character: dict, album: dict | None) -> str:
    lines = [f"### {md(character['name'])}", md(character["intro"]), "Tags: " + ", ".join(md(t) for t in character["tags"])]
    greeting = character["profile"]["fields"].get("first_mes", "")
    if greeting:
        lines.append(f"> {md(greeting)}")
    if album:
        state = "unlocked" if album["unlocked"] else (f"**{album['price']} credits** to unlock (the creator receives "
                                                      f"{album['creator_receives']}, the platform {album['platform_receives']})")
        lines.append(f"Photo Album: {album['images']} image(s), {state}.")
    return "\n\n".join(lines)


def build_catalogue(services: Services, session: SessionUI, functions, tab: gr.Tab, chat_with: gr.State | None = None) -> None:
    """`chat_with`: the Chat tab's target; the detail panel's Chat button sets it (ui/chat.py opens the chat)."""
    limits = services.characters.limits
    with gr.Row():
        query = gr.Textbox(label="Search by name", scale=3, elem_id="catalogue-query")
        tag = gr.Dropdown([("Any tag", "")] + [(t, t) for t in limits.preset_tags], value="", label="Tag",
                          allow_custom_value=True, scale=2, elem_id="catalogue-tag")
        search = gr.Button("Search", scale=0, min_width=100, elem_id="catalogue-search")
    summary = gr.Markdown(elem_id="catalogue-summary")
    results = gr.Gallery(fit_columns=False, label="Characters", columns=5, height=320, object_fit="cover", type="filepath", allow_preview=False,
                         elem_id="catalogue-results")
    ids = gr.State([])
    with gr.Row():
        link = gr.Textbox(label="Open by link (a character id)", scale=3, elem_id="catalogue-link")
        open_link = gr.Button("Open", scale=0, min_width=90, elem_id="catalogue-open")
    opened = gr.State("")
    shown_price = gr.State(0)  # the album price this visitor was shown: the unlock confirms it
    with gr.Row():
        with gr.Column(scale=2):
            detail = gr.Markdown(elem_id="catalogue-detail")
            with gr.Row():
                unlock = gr.Button("Unlock Photo Album", size="sm", visible=False, elem_id="catalogue-unlock")
                download = gr.Button("Download card (PNG V3)", size="sm", visible=False, elem_id="catalogue-download")
                chat = gr.Button("💬 Chat", size="sm", variant="primary", visible=False, elem_id="catalogue-chat")
            card_file = gr.File(label="Card", interactive=False, visible=False, elem_id="catalogue-card-file")
        with gr.Column(scale=3):
            gallery = gr.Gallery(fit_columns=False, label="Gallery", columns=4, height=240, type="filepath", elem_id="catalogue-gallery")
            videos = gr.Gallery(fit_columns=False, label="Videos", columns=3, height=160, type="filepath", elem_id="catalogue-videos")

    @user_errors
    def on_search(text, chosen_tag):
        found = functions.catalogue(query=text or "", tag=chosen_tag or "", page=1)
        cards = [(c["cover"], f"{c['name']} — {c['intro']}") for c in found["characters"] if c["cover"]]  # or the main image
        note = f"{found['total']} character(s)" + (f", page 1 of {found['pages']}" if found["pages"] > 1 else "")
        if not found["total"]:
            note = "No verified public character matches yet."
        return cards, [c["id"] for c in found["characters"] if c["cover"]], note

    gr.on([search.click, query.submit, tab.select], on_search, [query, tag], [results, ids, summary], api_visibility="private")

    def view(character_id, token, profile):
        viewer = optional_account(services, token, profile)
        character = functions.character(character_id=character_id, token=token, profile=profile)
        try:
            album = functions.album(character_id=character_id, token=token, profile=profile)
        except gr.Error:
            album = None
        pictures = [(i["file"], "") for i in functions.character_gallery(character_id=character_id, media="image", token=token, profile=profile)["items"]]
        clips = [(i["file"], "") for i in functions.character_gallery(character_id=character_id, media="video", token=token, profile=profile)["items"]]
        can_unlock = album is not None and not album["unlocked"] and album["offered"] and viewer is not None
        label = f"Unlock Photo Album ({album['price']} credits)" if album else "Unlock Photo Album"
        return (character_id, detail_text(character, album), gr.update(visible=can_unlock, value=label), gr.update(visible=True),
                pictures, clips, gr.update(visible=False, value=None), album["price"] if album else 0,
                gr.update(visible=chat_with is not None))

    view_outputs = [opened, detail, unlock, download, gallery, videos, card_file, shown_price, chat]

    @user_errors
    def on_select(shown_ids, token, evt: gr.SelectData, profile: gr.OAuthProfile | None = None):
        return view(clicked(shown_ids, evt), token, profile)

    results.select(on_select, [ids, session.token], view_outputs, api_visibility="private")

    @user_errors
    def on_link(character_id, token, profile: gr.OAuthProfile | None = None):
        if not (character_id or "").strip():
            raise gr.Error("Paste a character id (the link its owner shared).")
        return view(character_id.strip(), token, profile)

    gr.on([open_link.click, link.submit], on_link, [link, session.token], view_outputs, api_visibility="private")

    @user_errors
    def on_unlock(character_id, price, token, profile: gr.OAuthProfile | None = None):
        current = functions.album(character_id=character_id, token=token, profile=profile)["price"]
        if current != price:  # shown again at the new price; the visitor confirms by clicking again
            out = list(view(character_id, token, profile))
            out[1] += f"\n\nThe album's price changed from {price} to {current} credits; nothing was charged. Look again and confirm."
            return (*out, bar_text(account_for(services, token, profile)))
        result = functions.album_unlock(token=token, character_id=character_id, price=price, profile=profile)
        out = list(view(character_id, token, profile))
        out[1] += f"\n\nUnlocked: {result['charged']} credit(s) charged." if not result["already_unlocked"] else "\n\nAlready unlocked."
        return (*out, bar_text(account_for(services, token, profile)))

    unlock.click(on_unlock, [opened, shown_price, session.token], view_outputs + [session.bar], api_visibility="private")

    @user_errors
    def on_download(character_id, token, profile: gr.OAuthProfile | None = None):
        return gr.update(visible=True, value=functions.character_export(character_id=character_id, format="png-v3", token=token,
                                                                        profile=profile))

    download.click(on_download, [opened, session.token], [card_file], api_visibility="private")

    if chat_with is not None:
        def on_chat(character_id):
            if not character_id:
                raise gr.Error("Open a character first.")
            return {"id": character_id, "at": time.time()}  # a new value each click, so the Chat tab always reacts

        chat.click(on_chat, [opened], [chat_with], api_visibility="private")
