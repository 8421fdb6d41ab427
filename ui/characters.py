"""Characters: a profile built on a figure (Character Card fields with their limits), a gallery of your images,
the card image, and a Character Card V2/V3 PNG to download."""
from __future__ import annotations

import gradio as gr

from services.creation.characters import CARD_FIELDS, Profile
from services.container import Services

from .api import api, public, required, ui_event
from .errors import user_errors
from .text import md
from .remix import figure_choices
from .session import SessionUI, account_for, optional_account

NEW = ""  # the picker's value for "a new character"
MORE = {"mes_example", "system_prompt", "creator_notes", "creator"}  # folded away: most people skip them


def split_tags(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in (text or "").split(","))


def split_greetings(text: str) -> tuple[str, ...]:
    """Alternate greetings are paragraphs: separated by a blank line."""
    return tuple(p.strip() for p in (text or "").replace("\r\n", "\n").split("\n\n"))


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab, current_figure: gr.State) -> None:
    limits = services.characters.limits
    configured = {f.key: f for f in limits.fields}
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                pick = gr.Dropdown([("New character", NEW)], value=NEW, label="Character", allow_custom_value=True,
                                   scale=3, elem_id="character-pick")
                figure = gr.Dropdown([], label="Built on figure (its canonical image is the face)", allow_custom_value=True,
                                     scale=3, elem_id="character-figure")
            status = gr.Markdown("Pick a figure, give the character a name, and save. Then add images and export its card.",
                                 elem_id="character-status")
            boxes: dict[str, gr.Textbox] = {}

            def box(key: str) -> None:  # every card field has a box; the limits file decides which are shown
                spec = configured.get(key)
                boxes[key] = gr.Textbox(
                    label=f"{spec.label} · up to {spec.max:,}" if spec else key, lines=spec.lines if spec else 1,
                    max_length=spec.max if spec else None, visible=spec is not None, elem_id=f"character-{key}",
                    placeholder="required" if spec and spec.required else "",
                )

            for key in CARD_FIELDS:
                if key not in MORE:
                    box(key)
            tags = gr.Textbox(label=f"Tags (comma-separated, up to {limits.max_tags})", elem_id="character-tags")
            with gr.Accordion("More card fields: example dialogue, system prompt, greetings, notes", open=False):
                for key in CARD_FIELDS:
                    if key in MORE:
                        box(key)
                greetings = gr.Textbox(
                    label=f"Alternate greetings (up to {limits.max_alternate_greetings}; separate them with a blank line)",
                    lines=3, elem_id="character-greetings",
                )
            save = gr.Button("Save character", variant="primary", elem_id="character-save")
        with gr.Column(scale=2):
            card_image = gr.Image(label="Card image", interactive=False, format="png", height=260, elem_id="character-card-image")
            gallery = gr.Gallery(label=f"Gallery (up to {limits.max_gallery}; select one for the buttons below)", columns=4,
                                 height=220, format="png", type="filepath", allow_preview=False, fit_columns=False,
                                 elem_id="character-gallery")
            picked = gr.State(None)
            with gr.Row():
                add_choice = gr.Dropdown([], label="Add one of your images", allow_custom_value=True, scale=3,
                                         elem_id="character-add-choice")
                add = gr.Button("Add", size="sm", scale=0, min_width=80, elem_id="character-add")
            with gr.Row():
                use_main = gr.Button("Use selected as card image", size="sm", elem_id="character-use-main")
                use_figure = gr.Button("Use the figure's image", size="sm")
                remove = gr.Button("Remove selected", size="sm")
            with gr.Row():
                version = gr.Radio([("Card V3 (with V2 inside)", "v3"), ("Card V2", "v2")], value="v3",
                                   label="Character Card format", elem_id="character-version")
                export = gr.Button("Export card PNG", elem_id="character-export")
            card_file = gr.File(label="Card PNG (import it in SillyTavern, RisuAI or any Character Card reader)",
                                interactive=False, elem_id="character-card-file")
            with gr.Row():
                confirm = gr.Checkbox(label="Yes, delete it", value=False)
                delete = gr.Button("Delete character", variant="stop", size="sm")

    field_boxes = [boxes[k] for k in CARD_FIELDS]

    def character_choices(account):
        return [("New character", NEW)] + [(f"{c.name} · on {c.figure_name}", c.id) for c in services.characters.list(account)]

    def image_choices(account):
        return [(f"{ref.model} · {ref.request_id[:8]} · image {ref.index + 1}", f"{ref.request_id}:{ref.index}")
                for ref in services.history.images(account.id)]

    def show(account, character, message: str = ""):
        """Every output of the form for one character (None: an empty new one)."""
        if character is None:
            values = [""] * len(CARD_FIELDS)
            return (gr.Dropdown(choices=character_choices(account), value=NEW), gr.update(), *values, "", "", None, [],
                    message, None)
        fields = character.profile["fields"]
        values = [fields.get(k, "") for k in CARD_FIELDS]
        pictures = [(g["path"], f"{'★ card · ' if i == character.main else ''}image {i + 1}") for i, g in enumerate(character.gallery)]
        return (gr.Dropdown(choices=character_choices(account), value=character.id), character.figure_id, *values,
                ", ".join(character.profile["tags"]), "\n\n".join(character.profile["alternate_greetings"]),
                str(character.image) if character.image.name else None, pictures, message, None)

    form = [pick, figure, *field_boxes, tags, greetings, card_image, gallery, status, picked]

    @user_errors
    def on_open(selected_figure, token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        if account is None:
            return gr.update(), gr.update(), gr.update()
        options = figure_choices(services, token, profile)
        ids = [v for _, v in options]
        value = selected_figure if selected_figure in ids else (ids[0] if ids else None)
        return (gr.Dropdown(choices=character_choices(account)), gr.Dropdown(choices=options, value=value),
                gr.Dropdown(choices=image_choices(account), value=None))

    gr.on([tab.select, current_figure.change], on_open, [current_figure, session.token], [pick, figure, add_choice],
          api_visibility="private")

    @user_errors
    def on_pick(character_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not character_id:
            out = list(show(account, None))
            out[0] = gr.update()
            return out
        return show(account, services.characters.get(account, character_id))

    pick.input(on_pick, [pick, session.token], form, api_visibility="private")

    assert CARD_FIELDS == ("name", "description", "personality", "scenario", "first_mes", "mes_example",
                           "system_prompt", "creator_notes", "creator")  # on_save's parameters, in this order

    @user_errors
    def on_save(character_id, figure_id, tag_text, greeting_text, name, description, personality, scenario, first_mes,
                mes_example, system_prompt, creator_notes, creator, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        values = (name, description, personality, scenario, first_mes, mes_example, system_prompt, creator_notes, creator)
        profile_data = Profile(
            fields={k: v for k, v in zip(CARD_FIELDS, values) if k in configured},
            tags=split_tags(tag_text), alternate_greetings=split_greetings(greeting_text),
        )
        if character_id:
            character = services.characters.update(account, character_id, profile_data)
            return show(account, character, f"Saved **{md(character.name)}**.")
        if not figure_id:
            raise gr.Error("Pick the figure this character is built on (create one in Figures first).")
        character = services.characters.create(account, figure_id, profile_data)
        return show(account, character, f"Created **{md(character.name)}** on figure {md(character.figure_name)}. "
                                        "Add images to its gallery, then export its card.")

    save.click(on_save, [pick, figure, tags, greetings, *field_boxes, session.token], form, api_visibility="private")

    def on_gallery_select(evt: gr.SelectData):
        return evt.index

    gallery.select(on_gallery_select, None, picked, api_visibility="private")

    def need_character(character_id, position=False):
        """Refuse clearly when no character is open (and, for the gallery buttons, no image is selected)."""
        if not character_id:
            raise gr.Error("Save the character first.")
        if position is None:
            raise gr.Error("Select an image in the gallery first.")

    @user_errors
    def on_add(character_id, choice, token, profile: gr.OAuthProfile | None = None):
        need_character(character_id)
        if not choice or ":" not in choice:
            raise gr.Error("Pick one of your images to add (make some in Images first).")
        request_id, _, index = choice.rpartition(":")
        account = account_for(services, token, profile)
        character = services.characters.add_image(account, character_id, request_id, int(index))
        return show(account, character, f"Added to the gallery ({len(character.gallery)} image(s)).")

    add.click(on_add, [pick, add_choice, session.token], form, api_visibility="private")

    @user_errors
    def on_main(character_id, position, token, profile: gr.OAuthProfile | None = None):
        need_character(character_id, position)
        account = account_for(services, token, profile)
        return show(account, services.characters.set_main(account, character_id, int(position)),
                    f"Image {int(position) + 1} is now the card image.")

    use_main.click(on_main, [pick, picked, session.token], form, api_visibility="private")

    @user_errors
    def on_figure_image(character_id, token, profile: gr.OAuthProfile | None = None):
        need_character(character_id)
        account = account_for(services, token, profile)
        return show(account, services.characters.set_main(account, character_id, None), "The figure's canonical image is the card image.")

    use_figure.click(on_figure_image, [pick, session.token], form, api_visibility="private")

    @user_errors
    def on_remove(character_id, position, token, profile: gr.OAuthProfile | None = None):
        need_character(character_id, position)
        account = account_for(services, token, profile)
        return show(account, services.characters.remove_image(account, character_id, int(position)), "Removed from the gallery.")

    remove.click(on_remove, [pick, picked, session.token], form, api_visibility="private")

    @user_errors
    def on_delete(character_id, sure, token, profile: gr.OAuthProfile | None = None):
        need_character(character_id)
        account = account_for(services, token, profile)
        services.characters.delete(account, character_id, bool(sure))
        return (*show(account, None, "Deleted."), False)

    delete.click(on_delete, [pick, confirm, session.token], form + [confirm], api_visibility="private")

    @user_errors
    def character_export(character_id: str, version: str = "v3", token: str = "", profile: gr.OAuthProfile | None = None):
        """Your character as a Character Card PNG. The picture is the card image (the figure's canonical image unless
        you picked a gallery image).

        Args:
            character_id: one of your characters (see /characters).
            version: "v3" (a `ccv3` chunk plus a V2 `chara` chunk for older readers) or "v2" (`chara` only).
            token: your session token from /session_start.
        """
        if not character_id:
            raise gr.Error("Save the character first.")
        return str(services.characters.export_card(account_for(services, token, profile), character_id, version))

    ui_event(services, export.click, character_export, {"character_id": pick, "version": version, "token": session.token}, [card_file],
             api_name="character_export")
    public(services, character_export, [card_file], api_name="character_export", like={"version": version}, concurrency_limit=None)

    # -- API -------------------------------------------------------------------------------------------
    @user_errors
    def character_save(token: str = "", figure_id: str = "", character_id: str = "", fields: dict | None = None,
                       tags: list[str] | None = None, alternate_greetings: list[str] | None = None,
                       profile: gr.OAuthProfile | None = None) -> dict:
        """Create a character on one of your figures, or update one. Everything is checked before anything is written.

        Args:
            token: your session token from /session_start.
            figure_id: the figure a new character is built on (when creating).
            character_id: "" creates a character; an id updates that one.
            fields: Character Card fields, e.g. name (required), description, personality, scenario, first_mes.
            tags: the character's tags.
            alternate_greetings: more first messages.
        """
        account = account_for(services, token, profile)
        data = Profile(fields=dict(fields or {}), tags=tuple(tags or ()), alternate_greetings=tuple(alternate_greetings or ()))
        if character_id:
            return services.characters.update(account, character_id, data).as_dict()
        return services.characters.create(account, figure_id, data).as_dict()

    @user_errors
    def characters(token: str = "", profile: gr.OAuthProfile | None = None) -> list[dict]:
        """Your characters, most recently changed first.

        Args:
            token: your session token from /session_start.
        """
        return [c.as_dict() for c in services.characters.list(account_for(services, token, profile))]

    @user_errors
    def character_add_image(token: str = "", character_id: str = "", request_id: str = "", index: int = 0,
                            profile: gr.OAuthProfile | None = None) -> dict:
        """Add one of your generated images to the character's gallery.

        Args:
            token: your session token from /session_start.
            character_id: one of your characters.
            request_id: one of your generations (see /history).
            index: which of its images, from 0.
        """
        required(character_id=character_id, request_id=request_id)
        return services.characters.add_image(account_for(services, token, profile), character_id, request_id, int(index)).as_dict()

    @user_errors
    def character_set_card_image(token: str = "", character_id: str = "", position: int = -1,
                                 profile: gr.OAuthProfile | None = None) -> dict:
        """Pick the card image: a gallery image (it must be one the output check passed), or the figure's canonical image.

        Args:
            token: your session token from /session_start.
            character_id: one of your characters.
            position: the gallery position, from 0; -1 takes the figure's canonical image.
        """
        required(character_id=character_id)
        chosen = None if int(position) < 0 else int(position)
        return services.characters.set_main(account_for(services, token, profile), character_id, chosen).as_dict()

    for fn in (character_save, characters, character_add_image, character_set_card_image):
        api(services, fn, api_name=fn.__name__)
