"""Characters tab: My characters (the step-by-step creation flow and the edit form), the public Catalogue, and
Moderation for QA sessions. Every button calls the same function as its API endpoint (ui/character_api.py)."""
from __future__ import annotations

import gradio as gr

from services.container import Services
from services.creation.characters import CharacterError, voices
from services.creation.characters.profile import (challenge_text, persona_text, split_lines, split_paragraphs)

from . import catalogue, character_advanced, character_api, character_media, moderation, qa
from .errors import user_errors
from .remix import figure_choices
from .session import SessionUI, account_for, bar_text, optional_account
from .text import md

NEW = ""  # the picker's value for "a new character"
REQUIRED = ("name", "first_mes")  # shown in step 2 (the limits file requires them)
STORY = ("scenario", "personality", "description")  # step 3
MORE = ("mes_example", "system_prompt", "post_history_instructions", "creator_notes", "creator")


def tags_of(presets: list[str] | None, custom: str) -> list[str]:
    return [*(presets or []), *(t.strip() for t in (custom or "").split(",") if t.strip())]


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab, current_figure: gr.State,
          chat_with: gr.State | None = None) -> None:
    functions = character_api.register(services)
    limits = services.characters.limits
    specs = {f.key: f for f in limits.fields}
    with gr.Tabs():
        with gr.Tab("My characters", id="characters-mine") as mine_tab:
            form = _form(services, session, functions, limits, specs)
        with gr.Tab("Catalogue", id="characters-catalogue") as catalogue_tab:
            catalogue.build_catalogue(services, session, functions, catalogue_tab, chat_with)
        with gr.Tab("Moderation", id="characters-moderation", visible=False) as moderation_tab:  # QA sessions only
            moderation.build_moderation(services, session, functions, moderation_tab)
        with gr.Tab("QA", id="characters-qa", visible=False) as qa_tab:  # QA sessions only: preset QA runs (ui/qa.py)
            qa.build(services, session, qa_tab)
    character_media.build(services, session, functions, form)
    character_advanced.build(services, session, functions, form)

    def on_open(selected_figure, token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        if account is None:
            return gr.update(), gr.update(), gr.update()
        options = [("No figure", "")] + figure_choices(services, token, profile)
        value = selected_figure if selected_figure in [v for _, v in options] else ""
        return (gr.Dropdown(choices=form.character_choices(account)), gr.Dropdown(choices=options, value=value),
                "figure" if value else gr.update())

    gr.on([tab.select, mine_tab.select, current_figure.change], on_open, [current_figure, session.token],
          [form.pick, form.figure, form.avatar_source], api_visibility="private"
          ).then(form.on_voice, form.voice_inputs, form.voice_outputs, api_visibility="private")  # a figure picked elsewhere


class Form:
    """The components of the My characters form other modules wire to."""

    def __init__(self, **components):
        self.__dict__.update(components)


def _form(services: Services, session: SessionUI, functions, limits, specs) -> Form:
    def box(key: str, **extra) -> gr.Textbox:
        spec = specs.get(key)
        return gr.Textbox(label=f"{spec.label} · up to {spec.max:,}" if spec else key, lines=spec.lines if spec else 1,
                          max_length=spec.max if spec else None, visible=spec is not None, elem_id=f"character-{key}",
                          placeholder="required" if spec and spec.required else "", **extra)

    boxes: dict[str, gr.Textbox] = {}
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                pick = gr.Dropdown([("New character", NEW)], value=NEW, label="Character", allow_custom_value=True,
                                   scale=3, elem_id="character-pick")
            status = gr.Markdown("Create a character in three steps, then save. A figure is optional.", elem_id="character-status")
            gr.Markdown("#### 1 · Look")
            figure = gr.Dropdown([("No figure", "")], value="", label="Figure (optional: its canonical image becomes the "
                                 "main image, and it unlocks a Photo Album)", allow_custom_value=True, elem_id="character-figure")
            avatar_source = gr.Radio([("Upload an image", "upload"), ("The figure's canonical image", "figure"),
                                      ("Generate one (paid)", "generate")], value="upload", label="Main image (SFW)",
                                     elem_id="character-avatar-source")
            avatar_upload = gr.Image(type="filepath", sources=["upload"], label="Upload (PNG, JPEG or WEBP)", height=180,
                                     elem_id="character-avatar-upload")
            avatar_prompt = gr.Textbox(label=f"Image prompt · up to {limits.avatar_prompt_max:,} (empty: composed from the profile)",
                                       max_length=limits.avatar_prompt_max, visible=False, elem_id="character-avatar-prompt")
            avatar_price = gr.Markdown(visible=False, elem_id="character-avatar-price")
            cover_source = gr.Radio([("No cover, or keep the current one", ""), ("Upload a cover", "upload"),
                                     ("Generate one (paid)", "generate"), ("Remove the cover", "none")], value="",
                                    label="Cover image (optional, SFW: the catalogue shows it, else the main image)",
                                    elem_id="character-cover-source")
            cover_upload = gr.Image(type="filepath", sources=["upload"], label="Cover upload (PNG, JPEG or WEBP)", height=140,
                                    visible=False, elem_id="character-cover-upload")
            cover_prompt = gr.Textbox(label=f"Cover prompt · up to {limits.avatar_prompt_max:,} (empty: composed from the profile)",
                                      max_length=limits.avatar_prompt_max, visible=False, elem_id="character-cover-prompt")
            gr.Markdown("#### 2 · Who they are (required)")
            boxes["name"] = box("name")
            intro = gr.Textbox(label=f"Introduction (shown on the catalogue card) · up to {limits.max_intro}",
                               max_length=limits.max_intro, placeholder="required", elem_id="character-intro")
            with gr.Row():
                preset_tags = gr.CheckboxGroup(list(limits.preset_tags), label=f"Tags (at least one, up to {limits.max_tags})",
                                               elem_id="character-preset-tags", scale=3)
                custom_tags = gr.Textbox(label="Your own tags, comma-separated", elem_id="character-custom-tags", scale=2)
            visibility = gr.Radio([("Public (listed once a moderator verifies it)", "public"), ("Unlisted (by link)", "unlisted"),
                                   ("Private (only you)", "private")], value="private", label="Visibility",
                                  elem_id="character-visibility")
            boxes["first_mes"] = box("first_mes")
            gr.Markdown("#### 3 · Optional")
            with gr.Accordion("Scenario, personality, backstory", open=False):
                for key in STORY:
                    boxes[key] = box(key)
                    if key == "personality":
                        voice_note = gr.Markdown(elem_id="character-personality-voice")  # "from the ... archetype"
                        with gr.Row():
                            suggest = gr.Button("Suggest traits", size="sm", scale=0, min_width=140, elem_id="character-suggest")
                            personality_help = gr.Markdown(elem_id="character-personality-help")
                backstory_help = gr.Markdown("Backstory: " + " · ".join(limits.backstory.guidance) + ".",
                                             elem_id="character-backstory-help")
            with gr.Accordion("Opening messages, chat models, persona cards, challenge modes", open=False):
                opening = gr.Textbox(label=f"Opening messages (up to {limits.max_opening_messages}, a blank line between "
                                     "them; a chat picks one at random)", lines=3, elem_id="character-opening")
                chat_models = gr.Dropdown(list(limits.chat_models), multiselect=True, max_choices=limits.max_chat_models,
                                          label=f"Chat models (up to {limits.max_chat_models})", elem_id="character-chat-models")
                personas = gr.Textbox(label=f"Persona cards (up to {limits.max_persona_cards}, one per line: Name: description)",
                                      lines=2, elem_id="character-personas")
                challenges = gr.Textbox(label=f"Challenge modes (none, or 1 to {limits.max_challenge_modes}, one per line: "
                                        "goal | target behaviour unlocked at 100% | progress hint)", lines=2,
                                        elem_id="character-challenges")
            with gr.Accordion("More card fields: example dialogue, system prompt, notes", open=False):
                for key in MORE:
                    boxes[key] = box(key)
            save = gr.Button("Save character", variant="primary", elem_id="character-save")
        with gr.Column(scale=2):
            main_image = gr.Image(label="Main image", interactive=False, format="png", height=260, elem_id="character-main-image")
            main_note = gr.Markdown(elem_id="character-main-note")
            cover_image = gr.Image(label="Cover", interactive=False, format="png", height=140, elem_id="character-cover-image")
            media_slot = gr.Column()  # galleries, album and cards: ui/character_media.py

    fields_order = (*REQUIRED, *STORY, *MORE)
    field_boxes = [boxes[k] for k in fields_order]

    def character_choices(account):
        return [("New character", NEW)] + [(f"{c.name} · {c.visibility}", c.id) for c in services.characters.list(account)]

    def main_note_text(character) -> str:
        if character.avatar is None:
            return "No main image yet."
        check = character.avatar.get("safety")
        label = {"safe": "checked by the output check", "unchecked": "**unchecked**: no output check ran on it"}.get(check, check)
        return f"Main image: {character.avatar['source']}, {label}."

    def show(account, character, message: str = ""):
        """Every output of the form for one character (None: an empty new one)."""
        if character is None:
            return (gr.Dropdown(choices=character_choices(account), value=NEW), gr.update(), *([""] * len(field_boxes)), "",
                    [], "", "private", "", [], "", "", None, "", message, None, "")
        p = character.profile
        presets = [t for t in p["tags"] if t in limits.preset_tags]
        custom = ", ".join(t for t in p["tags"] if t not in limits.preset_tags)
        status_line = f"**{md(character.name)}** · {md(character.status)}"
        return (gr.Dropdown(choices=character_choices(account), value=character.id), character.figure_id or "",
                *[p["fields"].get(k, "") for k in fields_order], p["intro"], presets, custom, character.visibility,
                "\n\n".join(p["alternate_greetings"]), p["chat_models"], "\n".join(persona_text(c) for c in p["persona_cards"]),
                "\n".join(challenge_text(c) for c in p["challenge_modes"]),
                str(character.image) if character.image else None, main_note_text(character),
                (message + "  \n" if message else "") + status_line,
                str(character.cover_image) if character.cover_image else None, "")

    outputs = [pick, figure, *field_boxes, intro, preset_tags, custom_tags, visibility, opening, chat_models, personas,
               challenges, main_image, main_note, status, cover_image, cover_source]

    @user_errors
    def on_pick(character_id, token, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        if not character_id:
            out = list(show(account, None))
            out[0] = gr.update()
            return out
        return show(account, services.characters.mine(account, character_id))

    picked = pick.input(on_pick, [pick, session.token], outputs, api_visibility="private")

    def on_source(source, figure_id, token, profile: gr.OAuthProfile | None = None):
        generate = source == "generate"
        price = ""
        if generate:
            account = optional_account(services, token, profile)
            quote = services.characters.quote_avatar(figure_backed=bool(figure_id))
            price = f"**Price:** {quote.total} credit{'s' if quote.total != 1 else ''} ({quote.model})" + (
                f" · you have {account.balance_text()}" if account else "")
        return (gr.update(visible=source == "upload"), gr.update(visible=generate), gr.update(visible=generate, value=price))

    avatar_source.change(on_source, [avatar_source, figure, session.token], [avatar_upload, avatar_prompt, avatar_price],
                         api_visibility="private")

    def on_cover_source(source):
        return gr.update(visible=source == "upload"), gr.update(visible=source == "generate")

    cover_source.change(on_cover_source, [cover_source], [cover_upload, cover_prompt], api_visibility="private")

    def on_figure(figure_id):
        return "figure" if figure_id else "upload"

    figure.input(on_figure, [figure], [avatar_source], api_visibility="private")

    def archetype_of(figure_id, token, profile) -> str:
        """The archetype the picked figure was made from ("" for none, a Custom figure, or no longer one of yours)."""
        account = optional_account(services, token, profile)
        if not figure_id or account is None:
            return ""
        try:
            return voices.figure_archetype(services.figures, account, figure_id)
        except CharacterError:
            return ""

    def on_suggest(personality, figure_id, token, profile: gr.OAuthProfile | None = None):
        result = functions.character_help(personality=personality or "", backstory="",
                                          archetype=archetype_of(figure_id, token, profile))["personality"]
        lines = [f"Try: **{md(', '.join(result['traits']))}**, and a quirk: _{md(result['quirk'])}_."]
        lines += [f"⚠ {md(w)}" for w in result["warnings"]]
        return "  \n".join(lines)

    suggest.click(on_suggest, [boxes["personality"], figure, session.token], [personality_help], api_visibility="private")

    presets = services.figure_presets

    def on_voice(character_id, figure_id, personality, token, profile: gr.OAuthProfile | None = None):
        """A new character on a Quick figure: an empty personality (or an untouched pre-fill of another archetype)
        shows the archetype's voice and traits, editable; what the creator typed stays."""
        if character_id:
            return gr.update(), ""
        archetype = archetype_of(figure_id, token, profile)
        seed, untouched = presets.personality_seed(archetype), presets.is_seed(personality)
        if (personality or "").strip() and not untouched:
            return gr.update(), ""
        if not seed:  # no archetype: an untouched pre-fill goes; an empty box is left alone (no write)
            return ("" if untouched else gr.update()), ""
        note = f"Pre-filled from the {md(presets.archetypes[archetype].label)} archetype: edit it freely."
        return (gr.update() if (personality or "").strip() == seed else seed), note

    voice_inputs, voice_outputs = [pick, figure, boxes["personality"], session.token], [boxes["personality"], voice_note]
    figure.input(on_voice, voice_inputs, voice_outputs, api_visibility="private")
    picked.then(on_voice, voice_inputs, voice_outputs, api_visibility="private")

    def on_backstory(text):
        result = functions.character_help(personality="", backstory=text or "")["backstory"]
        line = "Backstory: " + " · ".join(result["guidance"]) + f". {result['words']} words."
        return "  \n".join([line, *(f"⚠ {md(w)}" for w in result["warnings"])])

    boxes["description"].change(on_backstory, [boxes["description"]], [backstory_help], api_visibility="private")

    assert fields_order == ("name", "first_mes", "scenario", "personality", "description", "mes_example", "system_prompt",
                            "post_history_instructions", "creator_notes", "creator")  # on_save's parameters, in order

    @user_errors
    def on_save(character_id, figure_id, source, upload, prompt, name, first_mes, scenario, personality, description,
                mes_example, system_prompt, post_history_instructions, creator_notes, creator, intro_text, presets, custom,
                vis, opening_text, models, persona_lines, challenge_lines, cover_src, cover_file, cover_text, token,
                profile: gr.OAuthProfile | None = None, progress=gr.Progress()):
        extra = {k: v for k, v in zip(fields_order[2:], (scenario, personality, description, mes_example, system_prompt,
                                                          post_history_instructions, creator_notes, creator)) if k in specs}
        common = dict(token=token, name=name, intro=intro_text, tags=tags_of(presets, custom), greeting=first_mes, fields=extra,
                      opening_messages=list(split_paragraphs(opening_text)), chat_models=list(models or []),
                      persona_cards=list(split_lines(persona_lines)), challenge_modes=list(split_lines(challenge_lines)),
                      cover_source=cover_src or "", cover=cover_file if cover_src == "upload" else None, cover_prompt=cover_text or "")
        if cover_src == "upload" and not cover_file:
            raise gr.Error("Upload the cover (PNG, JPEG or WEBP), or pick another cover choice.")
        if character_id:
            functions.character_update(character_id=character_id, visibility=vis or "", profile=profile, progress=progress, **common)
            account = account_for(services, token, profile)
            character = services.characters.mine(account, character_id)
            return (*show(account, character, f"Saved **{md(character.name)}**."), bar_text(account))
        if source == "figure" and not figure_id:
            raise gr.Error("Pick the figure whose canonical image becomes the main image, or upload or generate one.")
        if source == "upload" and not upload:
            raise gr.Error("Upload the main image (PNG, JPEG or WEBP), or pick “Generate one”.")
        created = functions.character_create(visibility=vis or "", figure_id=figure_id or "", avatar_source=source,
                                             avatar=upload if source == "upload" else None, avatar_prompt=prompt or "",
                                             profile=profile, progress=progress, **common)
        account = account_for(services, token, profile)
        on = f" on figure {md(created['figure_name'])}" if created.get("figure_id") else ""  # yours: you see the figure
        return (*show(account, services.characters.mine(account, created["id"]),
                      f"Created **{md(created['name'])}**{on}. Add images to its gallery, then export its card."), bar_text(account))

    save.click(on_save, [pick, figure, avatar_source, avatar_upload, avatar_prompt, *field_boxes, intro, preset_tags,
                         custom_tags, visibility, opening, chat_models, personas, challenges, cover_source, cover_upload,
                         cover_prompt, session.token],
               outputs + [session.bar], api_visibility="private", show_progress_on=[main_image]
               ).success(on_voice, voice_inputs, voice_outputs, api_visibility="private")  # saved: no pre-fill note

    return Form(pick=pick, figure=figure, status=status, main_image=main_image, main_note=main_note, media_slot=media_slot,
                avatar_source=avatar_source, avatar_upload=avatar_upload, avatar_prompt=avatar_prompt, show=show,
                outputs=outputs, character_choices=character_choices, on_voice=on_voice, voice_inputs=voice_inputs,
                voice_outputs=voice_outputs)
