"""Photo album endpoints of the characters API (registered with the others by ui/character_api.py): offer a
figure-backed character's gallery images as an album, unlock another user's album, and read one."""
from __future__ import annotations

import gradio as gr

from services.container import Services

from .api import required
from .errors import user_errors
from .session import account_for, optional_account


def album_endpoints(services: Services) -> dict:
    albums = services.albums

    @user_errors
    def album_offer(token: str = "", character_id: str = "", price: int = 0, media_ids: list[str] | None = None,
                    profile: gr.OAuthProfile | None = None) -> dict:
        """Offer (or re-offer) a photo album of a figure-backed character's gallery images; they are hidden until unlocked.

        Args:
            token: your session token from /session_start.
            character_id: one of your characters built on a figure.
            price: credits, within the range in /character_options; the creator receives creator_share_percent of it in whole credits (rounded down), the platform the rest.
            media_ids: required: the gallery image ids the album holds, in order. Each offer sets exactly these (a re-offer never adds other gallery images; leave one out to take it out of the album).
        """
        required(character_id=character_id)
        return albums.offer(account_for(services, token, profile), character_id, int(price), media_ids)

    @user_errors
    def album_unlock(token: str = "", character_id: str = "", price: int = 0, profile: gr.OAuthProfile | None = None) -> dict:
        """Unlock another user's photo album once: the price moves from you, the creator gets their share, the platform the rest.

        Args:
            token: your session token from /session_start.
            character_id: the character whose album to unlock.
            price: required: the price /album showed you, in credits. The unlock is refused, nothing charged, when it is missing or the album's price changed since.
        """
        required(character_id=character_id)
        return albums.unlock(account_for(services, token, profile), character_id, price)

    @user_errors
    def album(character_id: str = "", token: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """A character's photo album: price, size and what each unlock pays the creator and the platform, and its images once you unlocked it.

        Args:
            character_id: the character's id.
            token: your session token.
        """
        required(character_id=character_id)
        return albums.album(optional_account(services, token, profile), character_id)
    return {"album_offer": album_offer, "album_unlock": album_unlock, "album": album}
