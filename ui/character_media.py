"""My characters, right column: the main image controls, the image and video galleries (files generated here
only), an edit of the main image, the Photo Album offer, card export and import, and delete."""
from __future__ import annotations

import gradio as gr

from services.container import Services
from services.creation.characters import CARD_FORMATS

from .errors import user_errors
from .session import SessionUI, account_for, bar_text
from .text import md

FORMAT_LABELS = {"png-v3": "PNG, Card V3 (with V2 inside)", "png-v2": "PNG, Card V2", "json": "JSON (V3)",
                 "charx": "CHARX (zip with images)"}


def build(services: Services, session: SessionUI, functions, form) -> None:
    terms = services.plans.albums
    with form.media_slot:
        with gr.Row():
            use_gallery = gr.Button("Use selected image as main", size="sm", elem_id="character-use-gallery")
            use_step1 = gr.Button("Use step 1's choice as main", size="sm", elem_id="character-use-step1")
        images = gr.Gallery(fit_columns=False, label="Image gallery (select one for the buttons)", columns=4, height=200, type="filepath",
                            allow_preview=False, elem_id="character-images")
        videos = gr.Gallery(fit_columns=False, label="Video gallery", columns=3, height=160, type="filepath", allow_preview=True,
                            elem_id="character-videos")
        picked = gr.State(None)  # the selected image's gallery id
        shown_ids = gr.State([])
        with gr.Row():
            add_choice = gr.Dropdown([], label="Add one of your images or videos", allow_custom_value=True, scale=3,
                                     elem_id="character-add-choice")
            add = gr.Button("Add", size="sm", scale=0, min_width=70, elem_id="character-add")
            remove = gr.Button("Remove selected", size="sm", scale=0, min_width=120)
        with gr.Row():
            instruction = gr.Textbox(label="Edit the main image (the result joins the gallery)", scale=3,
                                     placeholder="e.g. same person, evening light", elem_id="character-edit-instruction")
            edit = gr.Button("Edit (paid)", size="sm", scale=0, min_width=100, elem_id="character-edit")
        with gr.Accordion("Photo Album (characters built on a figure)", open=False):
            album_images = gr.Dropdown([], multiselect=True, label="Album images (numbered as in the image gallery; an offer "
                                       "holds exactly these, and one left out leaves the album)", elem_id="character-album-images")
            with gr.Row():
                price = gr.Number(value=terms.min_price, minimum=terms.min_price, maximum=terms.max_price, precision=0,
                                  label=f"Price ({terms.min_price}-{terms.max_price} credits; you receive "
                                        f"{terms.creator_share_percent} %, rounded down to whole credits)", elem_id="character-album-price")
                offer = gr.Button("Offer these images as the album", size="sm", elem_id="character-album-offer")
            album_note = gr.Markdown(elem_id="character-album-note")
        with gr.Row():
            card_format = gr.Radio([(FORMAT_LABELS[f], f) for f in CARD_FORMATS], value="png-v3", label="Card format",
                                   elem_id="character-format")
        with gr.Row():
            export = gr.Button("Export card", elem_id="character-export")
        card_file = gr.File(label="Card file (import it in SillyTavern, RisuAI or any Character Card reader)",
                            interactive=False, elem_id="character-card-file")
        with gr.Row():
            card_upload = gr.File(label="Import a card (PNG, JSON or CHARX)", file_types=[".png", ".json", ".charx"],
                                  type="filepath", elem_id="character-import-file")
            import_button = gr.Button("Import as a new character", size="sm", elem_id="character-import")
        with gr.Row():
            confirm = gr.Checkbox(label="Yes, delete it", value=False)
            delete = gr.Button("Delete character", variant="stop", size="sm")

    def need(character_id):
        if not character_id:
            raise gr.Error("Save the character first.")

    def media_of(account, character_id):
        if not character_id:
            return [], [], [], gr.update()
        image_items, video_items = [], []
        for media, bucket in (("image", image_items), ("video", video_items)):
            page = 1
            while True:  # the owner sees every page here
                got = services.characters.gallery(account, character_id, media, page)
                bucket.extend(got["items"])
                if page >= got["pages"]:
                    break
                page += 1
        pictures = [(i["file"], f"{i['origin']} · {'checked' if i['safety'] == 'safe' else i['safety']}") for i in image_items]
        clips = [(i["file"], "video") for i in video_items]
        return pictures, clips, [i["id"] for i in image_items], gr.Dropdown(choices=file_choices(account), value=None)

    def file_choices(account):
        choices = []
        for record in services.history.list(account.id, limit=60):
            for index, path in enumerate(record.files):
                kind = "video" if path.suffix == ".mp4" else "image"
                choices.append((f"{record.model} · {record.id[:8]} · {kind} {index + 1}", f"{record.id}:{index}"))
        return choices

    media_outputs = [images, videos, shown_ids, add_choice]

    def refresh(character_id, token, profile: gr.OAuthProfile | None = None):
        try:
            account = account_for(services, token, profile)
        except Exception:  # noqa: BLE001 - no session yet: nothing to show
            return [], [], [], gr.update()
        return media_of(account, character_id)

    form.pick.change(refresh, [form.pick, session.token], media_outputs, api_visibility="private")

    def on_select(ids, evt: gr.SelectData):
        return ids[evt.index] if 0 <= evt.index < len(ids) else None

    images.select(on_select, [shown_ids], [picked], api_visibility="private")

    def shown(account, character, message):
        return (*form.show(account, character, message), *media_of(account, character.id), bar_text(account))

    def reshow(character_id, token, profile, message):
        """The form, galleries and balance after a change to one of the session's characters."""
        account = account_for(services, token, profile)
        return shown(account, services.characters.mine(account, character_id), message)

    all_outputs = form.outputs + media_outputs + [session.bar]

    @user_errors
    def on_add(character_id, choice, token, profile: gr.OAuthProfile | None = None):
        need(character_id)
        if not choice or ":" not in choice:
            raise gr.Error("Pick one of your images or videos to add (make some in Images or Video first).")
        request_id, _, index = choice.rpartition(":")
        functions.character_gallery_add(token=token, character_id=character_id, request_id=request_id, index=int(index),
                                        profile=profile)
        return reshow(character_id, token, profile, "Added to the gallery.")

    add.click(on_add, [form.pick, add_choice, session.token], all_outputs, api_visibility="private", show_progress_on=[form.main_image])

    @user_errors
    def on_remove(character_id, media_id, token, profile: gr.OAuthProfile | None = None):
        need(character_id)
        if not media_id:
            raise gr.Error("Select an image in the gallery first.")
        functions.character_gallery_remove(token=token, character_id=character_id, media_id=media_id, profile=profile)
        return reshow(character_id, token, profile, "Removed from the gallery.")

    remove.click(on_remove, [form.pick, picked, session.token], all_outputs, api_visibility="private", show_progress_on=[form.main_image])

    @user_errors
    def on_use_gallery(character_id, media_id, token, profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        need(character_id)
        if not media_id:
            raise gr.Error("Select an image in the gallery first.")
        functions.character_set_main(token=token, character_id=character_id, source="gallery", media_id=media_id,
                                     profile=profile, progress=progress)
        return reshow(character_id, token, profile, "The selected image is the main image.")

    use_gallery.click(on_use_gallery, [form.pick, picked, session.token], all_outputs, api_visibility="private", show_progress_on=[form.main_image])

    @user_errors
    def on_use_step1(character_id, source, upload, prompt, token, profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        need(character_id)
        if source == "upload" and not upload:
            raise gr.Error("Upload an image in step 1 first.")
        functions.character_set_main(token=token, character_id=character_id, source=source, upload=upload,
                                     prompt=prompt or "", profile=profile, progress=progress)
        return reshow(character_id, token, profile, "New main image.")

    use_step1.click(on_use_step1, [form.pick, form.avatar_source, form.avatar_upload, form.avatar_prompt, session.token],
                    all_outputs, api_visibility="private", show_progress_on=[form.main_image])

    @user_errors
    def on_edit(character_id, text, token, profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        need(character_id)
        if not (text or "").strip():
            raise gr.Error("Write what to change in the main image.")
        functions.character_edit_main(token=token, character_id=character_id, instruction=text, profile=profile, progress=progress)
        return reshow(character_id, token, profile, "The edit joined the gallery.")

    edit.click(on_edit, [form.pick, instruction, session.token], all_outputs, api_visibility="private", show_progress_on=[form.main_image])

    @user_errors
    def album_choices(ids, character_id, token, profile: gr.OAuthProfile | None = None):
        """The gallery's images to pick from (numbered as shown), the album's current ones picked."""
        chosen = []
        if character_id:
            try:
                album = functions.album(character_id=character_id, token=token, profile=profile)
                chosen = [i["id"] for i in album["items"] if i["id"] in (ids or [])]
            except gr.Error:  # no album yet (or no session): nothing picked
                pass
        return gr.Dropdown(choices=[(f"image {n}", m) for n, m in enumerate(ids or [], 1)], value=chosen)

    shown_ids.change(album_choices, [shown_ids, form.pick, session.token], [album_images], api_visibility="private")

    @user_errors
    def on_offer(character_id, amount, chosen, ids, token, profile: gr.OAuthProfile | None = None):
        need(character_id)
        if not chosen:
            raise gr.Error("Pick the album's images first (an album holds only the images you pick).")
        album = functions.album_offer(token=token, character_id=character_id, price=int(amount or 0), media_ids=list(chosen),
                                      profile=profile)
        left = f" {len(album['left_album'])} image(s) left the album and show in the gallery again." if album["left_album"] else ""
        return (f"Album offered: **{album['images']} image(s)** for **{album['price']} credits**; each unlock pays you "
                f"**{album['creator_receives']}** and the platform {album['platform_receives']}. {album['buyers']} unlock(s) so far. "
                f"Its images are hidden from others until they unlock it.{left}"), album_choices(ids, character_id, token, profile)

    offer.click(on_offer, [form.pick, price, album_images, shown_ids, session.token], [album_note, album_images],
                api_visibility="private")

    @user_errors
    def on_export(character_id, fmt, token, profile: gr.OAuthProfile | None = None):
        need(character_id)
        return functions.character_export(character_id=character_id, format=fmt, token=token, profile=profile)

    export.click(on_export, [form.pick, card_format, session.token], [card_file], api_visibility="private")

    @user_errors
    def on_import(path, token, profile: gr.OAuthProfile | None = None):
        if not path:
            raise gr.Error("Choose a card file to import (PNG, JSON or CHARX).")
        created = functions.character_import(card=path, token=token, profile=profile)
        account = account_for(services, token, profile)
        return shown(account, services.characters.mine(account, created["id"]),
                     f"Imported **{md(created['name'])}** as a new character.")

    import_button.click(on_import, [card_upload, session.token], all_outputs, api_visibility="private", show_progress_on=[form.main_image])

    @user_errors
    def on_delete(character_id, sure, token, profile: gr.OAuthProfile | None = None):
        need(character_id)
        functions.character_delete(token=token, character_id=character_id, confirm=bool(sure), profile=profile)
        account = account_for(services, token, profile)
        return (*form.show(account, None, "Deleted."), [], [], [], gr.update(), bar_text(account), False)

    delete.click(on_delete, [form.pick, confirm, session.token], all_outputs + [confirm], api_visibility="private", show_progress_on=[form.main_image])
