"""The characters API: create (one call, with its main image), update, read, list, the public catalogue, galleries,
main image, edit of the main image, photo albums, Advanced for other visitors, card import and export, and moderation
for QA sessions.

The UI's Characters tab calls the same functions. Lists of structured items travel as one string per item:
persona cards as "Name: description", challenge modes as "goal | target behaviour | progress hint".
"""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from services.container import Services
from services.creation.characters import CARD_FORMATS, AvatarChoice, CoverChoice, Profile, backstory_help, personality_help
from services.creation.characters import voices
from services.creation.characters.profile import challenge_from_text, persona_from_text

from .album_api import album_endpoints
from .character_advanced import advanced_endpoints
from .api import api, public, required
from .errors import user_errors
from .session import account_for, optional_account


def profile_from(base: Profile | None, *, name: str | None = None, intro: str | None = None, tags: list[str] | None = None,
                 greeting: str | None = None, fields: dict | None = None, opening_messages: list[str] | None = None,
                 chat_models: list[str] | None = None, persona_cards: list[str] | None = None,
                 challenge_modes: list[str] | None = None) -> Profile:
    """A Profile from API arguments; None keeps `base`'s value (an update changes only what it names)."""
    base = base or Profile()
    merged = dict(base.fields)
    merged.update(fields or {})
    if name is not None:
        merged["name"] = name
    if greeting is not None:
        merged["first_mes"] = greeting
    return Profile(
        fields=merged,
        intro=base.intro if intro is None else intro,
        tags=base.tags if tags is None else tuple(tags),
        opening_messages=base.opening_messages if opening_messages is None else tuple(opening_messages),
        chat_models=base.chat_models if chat_models is None else tuple(chat_models),
        persona_cards=base.persona_cards if persona_cards is None else tuple(persona_from_text(p) for p in persona_cards),
        challenge_modes=base.challenge_modes if challenge_modes is None else tuple(challenge_from_text(c) for c in challenge_modes),
    )


def seed_of(seed: int) -> int | None:
    return None if seed is None or int(seed) < 0 else int(seed)


def register(services: Services) -> SimpleNamespace:
    """Every characters endpoint (call inside the Blocks)."""
    characters = services.characters

    @user_errors
    def character_create(token: str = "", name: str = "", intro: str = "", tags: list[str] | None = None,
                         visibility: str = "", greeting: str = "", figure_id: str = "", avatar_source: str = "",
                         avatar: str | None = None, avatar_prompt: str = "", avatar_model: str = "", seed: int = -1,
                         fields: dict | None = None, opening_messages: list[str] | None = None,
                         chat_models: list[str] | None = None, persona_cards: list[str] | None = None,
                         challenge_modes: list[str] | None = None, idempotency_key: str = "", cover_source: str = "",
                         cover: str | None = None, cover_prompt: str = "",
                         profile: gr.OAuthProfile | None = None, progress=gr.Progress()) -> dict:
        """Create a character in one call: profile, visibility, main image and an optional cover. Everything is checked
        before anything is written or paid; a generated main image (or cover) is paid like any generation. On a figure,
        a generated picture keeps the figure's face (its canonical image) and its style register. The figure stays
        private: only you (and QA sessions) see which figure a character is built on.

        Args:
            token: your session token from /session_start.
            name: the character's name (required).
            intro: a short introduction shown on its card (required).
            tags: at least one tag (preset tags or your own).
            visibility: public (listed after a moderator verifies it), unlisted (by link) or private (required).
            greeting: the first message a chat starts with (required).
            figure_id: optional; one of your figures (its canonical image is the default main image; unlocks albums).
            avatar_source: figure, upload or generate; "" takes the figure's image, else the upload, else generates one (paid).
            avatar: an uploaded main image (PNG, JPEG or WEBP) when avatar_source is upload.
            avatar_prompt: generate: the image prompt; "" composes one from the profile.
            avatar_model: generate: the model for generated pictures (main image and cover); "" takes the default. On a figure, a model that keeps the face (Remix's models).
            seed: generate: -1 for random.
            fields: more Character Card fields: scenario, personality, description (the backstory), mes_example, system_prompt, post_history_instructions, creator_notes, creator.
            opening_messages: up to 20 more greetings; a chat picks one at random per conversation.
            chat_models: up to 3 recommended chat model ids (see /character_options).
            persona_cards: up to 5, each "Name: description".
            challenge_modes: none, or 1 to 3, each "goal | target behaviour unlocked at 100% | progress hint".
            idempotency_key: send the same key again to get the first result without being charged twice.
            cover_source: the optional cover shown in the catalogue: "" for none, upload or generate (paid); a public or unlisted character's cover must pass the output check.
            cover: the uploaded cover (PNG, JPEG or WEBP) when cover_source is upload.
            cover_prompt: generate: the cover's prompt; "" composes a wide scene from the profile.
        """
        account = account_for(services, token, profile)
        data = profile_from(None, name=name, intro=intro, tags=tags, greeting=greeting, fields=fields,
                            opening_messages=opening_messages, chat_models=chat_models, persona_cards=persona_cards,
                            challenge_modes=challenge_modes)
        choice = AvatarChoice(avatar_source, upload=avatar, prompt=avatar_prompt, model=avatar_model, seed=seed_of(seed))
        covered = CoverChoice(cover_source, upload=cover, prompt=cover_prompt, model=avatar_model, seed=seed_of(seed))
        return characters.create(account, data, visibility, figure_id, choice, idempotency_key or None,
                                 on_step=lambda done, total: progress((done, total), desc="Generating", unit="steps"),
                                 cover=covered).as_dict()

    @user_errors
    def character_update(token: str = "", character_id: str = "", name: str | None = None, intro: str | None = None,
                         tags: list[str] | None = None, visibility: str = "", greeting: str | None = None,
                         fields: dict | None = None, opening_messages: list[str] | None = None,
                         chat_models: list[str] | None = None, persona_cards: list[str] | None = None,
                         challenge_modes: list[str] | None = None, cover_source: str = "", cover: str | None = None,
                         cover_prompt: str = "", idempotency_key: str = "", profile: gr.OAuthProfile | None = None,
                         progress=gr.Progress()) -> dict:
        """Change a character's profile, visibility or cover; what you leave out (null) stays. The main image, the
        figure and the galleries are not touched. A change to a public character sends it back to moderation.

        Args:
            token: your session token from /session_start.
            character_id: one of your characters.
            name: the new name, or null to keep it.
            intro: the new introduction, or null.
            tags: the new tags, or null.
            visibility: public, unlisted or private; "" keeps it.
            greeting: the new greeting, or null.
            fields: Character Card fields to change (the others stay).
            opening_messages: the new list, or null.
            chat_models: the new list, or null.
            persona_cards: the new list ("Name: description"), or null.
            challenge_modes: the new list ("goal | target | hint"), or null.
            cover_source: "" keeps the cover; upload or generate (paid; on a figure it keeps the figure's face and style) a new one; none removes it.
            cover: the uploaded cover (PNG, JPEG or WEBP) when cover_source is upload.
            cover_prompt: generate: the cover's prompt; "" composes a wide scene from the profile.
            idempotency_key: generate: send the same key again to get the first result without being charged twice.
        """
        required(character_id=character_id)
        account = account_for(services, token, profile)
        base = Profile.from_stored(characters.mine(account, character_id).profile)
        data = profile_from(base, name=name, intro=intro, tags=tags, greeting=greeting, fields=fields,
                            opening_messages=opening_messages, chat_models=chat_models, persona_cards=persona_cards,
                            challenge_modes=challenge_modes)
        return characters.update(account, character_id, data, visibility, CoverChoice(cover_source, upload=cover, prompt=cover_prompt),
                                 idempotency_key or None,
                                 on_step=lambda done, total: progress((done, total), desc="Generating the cover", unit="steps")).as_dict()

    @user_errors
    def character(character_id: str = "", token: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """One character: yours, an unlisted one by its id, or a verified public one (no session needed).

        Args:
            character_id: the character's id (its link).
            token: your session token, to open your own private characters.
        """
        required(character_id=character_id)
        return characters.get(optional_account(services, token, profile), character_id).as_dict()

    @user_errors
    def characters_mine(token: str = "", profile: gr.OAuthProfile | None = None) -> list[dict]:
        """Your characters, most recently changed first, each with its status (private, unlisted, pending, verified, rejected and why).

        Args:
            token: your session token from /session_start.
        """
        return [c.as_dict() for c in characters.list(account_for(services, token, profile))]

    @user_errors
    def catalogue(query: str = "", tag: str = "", page: int = 1) -> dict:
        """The public catalogue: verified public characters (no session needed), a page at a time.

        Args:
            query: part of a name; "" lists all.
            tag: one tag to filter by; "" for any.
            page: from 1.
        """
        return characters.catalogue(query, tag, page)

    @user_errors
    def character_gallery(character_id: str = "", media: str = "image", page: int = 1, token: str = "",
                          profile: gr.OAuthProfile | None = None) -> dict:
        """A page of a character's image or video gallery (public for public characters).

        Args:
            character_id: the character's id.
            media: image or video.
            page: from 1.
            token: your session token (for your own private characters and albums you unlocked).
        """
        required(character_id=character_id)
        return characters.gallery(optional_account(services, token, profile), character_id, media, page)

    @user_errors
    def character_gallery_add(token: str = "", character_id: str = "", request_id: str = "", index: int = 0,
                              profile: gr.OAuthProfile | None = None) -> dict:
        """Add one of your generated images or videos to your character's gallery (no uploads).

        Args:
            token: your session token from /session_start.
            character_id: one of your characters.
            request_id: one of your generations (see /history).
            index: which of its files, from 0.
        """
        required(character_id=character_id, request_id=request_id)
        return characters.gallery_add(account_for(services, token, profile), character_id, request_id, int(index)).as_dict()

    @user_errors
    def character_gallery_remove(token: str = "", character_id: str = "", media_id: str = "",
                                 profile: gr.OAuthProfile | None = None) -> dict:
        """Take an image or video out of your character's gallery.

        Args:
            token: your session token from /session_start.
            character_id: one of your characters.
            media_id: the gallery item's id (see /character_gallery).
        """
        required(character_id=character_id, media_id=media_id)
        return characters.gallery_remove(account_for(services, token, profile), character_id, media_id).as_dict()

    @user_errors
    def character_set_main(token: str = "", character_id: str = "", source: str = "gallery", media_id: str = "",
                           upload: str | None = None, prompt: str = "", model: str = "", seed: int = -1,
                           idempotency_key: str = "", profile: gr.OAuthProfile | None = None, progress=gr.Progress()) -> dict:
        """Change the main image: a gallery image, the figure's canonical image, an upload, or a new generation (paid;
        on a figure it keeps the figure's face and style register). It must be SFW; a public or unlisted character
        needs one the output check passed.

        Args:
            token: your session token from /session_start.
            character_id: one of your characters.
            source: gallery, figure, upload or generate.
            media_id: gallery: the image's id.
            upload: upload: a PNG, JPEG or WEBP image.
            prompt: generate: the prompt; "" composes one from the profile.
            model: generate: a text-to-image model (on a figure, one that keeps the face); "" takes the default.
            seed: generate: -1 for random.
            idempotency_key: generate: send the same key again to get the first result without being charged twice.
        """
        required(character_id=character_id)
        return characters.set_main(account_for(services, token, profile), character_id, source, media_id, upload, prompt,
                                   model, seed_of(seed), idempotency_key or None,
                                   on_step=lambda done, total: progress((done, total), desc="Generating", unit="steps")).as_dict()

    @user_errors
    def character_edit_main(token: str = "", character_id: str = "", instruction: str = "", model: str = "", seed: int = -1,
                            idempotency_key: str = "", profile: gr.OAuthProfile | None = None, progress=gr.Progress()) -> dict:
        """Edit the main image as the instruction says (the edit path, SFW, priced as an edit; on a figure it keeps the
        figure's style register); the result joins the gallery.

        Args:
            token: your session token from /session_start.
            character_id: one of your characters.
            instruction: what to change.
            model: an edit model; "" takes the default.
            seed: -1 for random.
            idempotency_key: send the same key again to get the first result without being charged twice.
        """
        required(character_id=character_id, instruction=instruction)
        model = model or services.catalogue.entries("edit", local=True)[0].id
        return characters.edit_main(account_for(services, token, profile), character_id, instruction, model, seed_of(seed),
                                    idempotency_key or None,
                                    on_step=lambda done, total: progress((done, total), desc="Editing", unit="steps")).as_dict()

    @user_errors
    def character_delete(token: str = "", character_id: str = "", confirm: bool = False, profile: gr.OAuthProfile | None = None) -> dict:
        """Delete one of your characters (confirm=True).

        Args:
            token: your session token from /session_start.
            character_id: one of your characters.
            confirm: must be true.
        """
        required(character_id=character_id)
        characters.delete(account_for(services, token, profile), character_id, bool(confirm))
        return {"deleted": character_id}

    @user_errors
    def review_characters(token: str = "", profile: gr.OAuthProfile | None = None) -> list[dict]:
        """QA sessions: public characters waiting for moderation, oldest first.

        Args:
            token: a QA session token.
        """
        return [c.as_dict() for c in characters.review_queue(account_for(services, token, profile))]

    @user_errors
    def review_character_view(token: str = "", character_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """QA sessions: everything a pending character publishes (every profile field, greeting, persona card and
        challenge mode, the main image, and the card export's data), with the revision a verdict must name.

        Args:
            token: a QA session token.
            character_id: the character to review.
        """
        required(character_id=character_id)
        return characters.review_view(account_for(services, token, profile), character_id)

    @user_errors
    def review_character(token: str = "", character_id: str = "", verify: bool = False, note: str = "",
                         revision: int = -1, profile: gr.OAuthProfile | None = None) -> dict:
        """QA sessions: verify a pending public character (it is listed) or reject it with a reason for its owner.
        The verdict names the revision you reviewed; if the owner changed the character since, it is refused and the
        character stays pending.

        Args:
            token: a QA session token.
            character_id: a pending character.
            verify: true lists it; false rejects it.
            note: why it is rejected (required when rejecting).
            revision: the revision /review_character_view showed you (required).
        """
        required(character_id=character_id)
        shown = None if revision is None or int(revision) < 0 else int(revision)
        return characters.review(account_for(services, token, profile), character_id, bool(verify), note, shown).as_dict()

    @user_errors
    def character_options() -> dict:
        """What the forms offer: preset tags, chat model ids, visibilities, every limit, card formats, album prices."""
        limits = characters.limits
        return {"preset_tags": list(limits.preset_tags), "chat_models": list(limits.chat_models),
                "visibilities": list(limits.visibilities), "card_formats": list(CARD_FORMATS),
                "limits": {k: v for k, v in limits.model_dump().items() if k.startswith("max_") or k == "backstory_warn_words"},
                "fields": [f.model_dump() for f in limits.fields],
                "album": services.plans.albums.model_dump(), "output_check": services.safety.name}

    @user_errors
    def character_help(personality: str = "", backstory: str = "", archetype: str = "", figure_id: str = "",
                       token: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Writing help: 3-5 suggested traits and a quirk, warnings on generic adjectives, and backstory guidance.
        With an archetype (or a figure made from one), the traits come from that archetype's traits.

        Args:
            personality: the personality text so far.
            backstory: the backstory text so far.
            archetype: optional: suggest from this figure archetype's traits (presets/figures.toml), e.g. explorer, mentor; "" from the general list.
            figure_id: optional, with token: one of your figures; a Quick figure's archetype replaces `archetype` (a Custom figure has none).
            token: your session token from /session_start (needed with figure_id only).
        """
        if figure_id:
            archetype = voices.figure_archetype(services.figures, account_for(services, token, profile), figure_id)
        traits = voices.archetype_traits(services.figure_presets, archetype)
        return {"personality": personality_help(characters.limits, personality, traits=traits), "backstory": backstory_help(characters.limits, backstory)}

    @user_errors
    def character_export(character_id: str = "", format: str = "png-v3", token: str = "", profile: gr.OAuthProfile | None = None):
        """A character as a card file: png-v3 (a `ccv3` chunk plus a V2 `chara` chunk), png-v2, json (V3) or charx (a
        zip with card.json, the main image and the gallery images). Yours, or any character you can open.

        Args:
            character_id: the character's id.
            format: png-v3, png-v2, json or charx.
            token: your session token.
        """
        required(character_id=character_id)
        return str(characters.export_card(optional_account(services, token, profile), character_id, format))

    @user_errors
    def character_import(card: str | None = None, token: str = "", visibility: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """A new character from a Character Card V1/V2/V3 (PNG or JSON) or a CHARX file. It never replaces one of
        yours; its picture goes through upload checks and the output check.

        Args:
            card: the card file.
            token: your session token from /session_start.
            visibility: public, unlisted or private; "" keeps the card's own (private when it names none).
        """
        account = account_for(services, token, profile)
        if not card:
            raise gr.Error("Upload a card file (PNG, JSON or CHARX).")
        return characters.import_card(account, card, visibility).as_dict()

    functions = {
        "character_create": character_create, "character_update": character_update, "character": character,
        "characters": characters_mine, "catalogue": catalogue, "character_gallery": character_gallery,
        "character_gallery_add": character_gallery_add, "character_gallery_remove": character_gallery_remove,
        "character_set_main": character_set_main, "character_edit_main": character_edit_main,
        "character_delete": character_delete, "character_export": character_export, "character_import": character_import,
        **album_endpoints(services), **advanced_endpoints(services), "review_characters": review_characters,
        "review_character_view": review_character_view,
        "review_character": review_character, "character_options": character_options, "character_help": character_help,
    }
    files = {"character_create": ("avatar", "cover"), "character_update": ("cover",), "character_set_main": ("upload",),
             "character_import": ("card",)}
    for name, fn in functions.items():
        if name == "character_export":
            public(services, fn, [gr.File(visible=False)], api_name=name, concurrency_limit=None)
        elif name in files or name == "character_edit_main":
            public(services, fn, [gr.JSON(visible=False)], api_name=name, files=files.get(name, ()))
        else:
            api(services, fn, api_name=name)
    return SimpleNamespace(**functions)
