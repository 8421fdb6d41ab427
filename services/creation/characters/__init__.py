"""Characters: a profile (Character Card fields, intro, tags, greetings, chat models, persona cards, challenge
modes) with its limits in presets/characters.toml; an optional figure; an SFW main image; visibility and moderation;
the public catalogue; galleries of images and videos generated here; photo albums; Character Card V1/V2/V3 and
CHARX import and export.

    profile.py  limits and the checks every save runs first; writing helpers
    cards.py    card building (pure: no database)
    card_reading.py reading cards back, bounded before decoding (pure)
    service.py  Characters: storage, visibility, main image, moderation, catalogue; with the mixins
    avatars.py    main image and cover sources (on a figure: its face and style), copies shown without metadata
    gallery.py    galleries and the edit of the main image
    card_files.py card export and import
    moderation.py the review queue, the review view (everything published) and verdicts bound to a revision
    lending.py    Advanced on others' characters: the creator's switch, and Advanced and Group of a lent character
    voices.py   archetype voices: a Quick figure's archetype seeds an empty personality; the helper's trait pool
    album.py    Albums: offer and unlock, one ledger sale per buyer
"""
from .album import Albums
from .card_reading import png_cards, read_card_file
from .cards import NAMESPACE
from .profile import (CARD_FIELDS, VISIBILITIES, CharacterError, CharacterLimits, CharactersFileError, Profile,
                      backstory_help, load_character_limits, personality_help)
from .service import CARD_FORMATS, AvatarChoice, Character, Characters, CoverChoice

__all__ = ["Albums", "AvatarChoice", "CARD_FIELDS", "CARD_FORMATS", "Character", "CharacterError", "CharacterLimits",
           "Characters", "CharactersFileError", "CoverChoice", "NAMESPACE", "Profile", "VISIBILITIES", "backstory_help",
           "load_character_limits", "personality_help", "png_cards", "read_card_file"]
