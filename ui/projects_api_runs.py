"""The projects API's runs: the price of New Version, New Version (each version its own paid request), uploaded
versions, and the refine chat on a card (free offline; through a language model, a paid chat message). Registered by
ui/projects_api.py."""
from __future__ import annotations

import time
from typing import Any

import gradio as gr

from services.container import Services

from .api import api, public, required
from .errors import user_errors
from .session import account_for

WAIT_S = 600  # /versions_new with wait=true answers once its versions finish, or after this long


def register_runs(services: Services) -> dict[str, Any]:
    """The New Version and refine endpoints, inside the app's Blocks; returns the functions by name."""
    projects = services.projects

    # -- New Version ----------------------------------------------------------------------------------------------
    @user_errors
    def version_quote(token: str = "", card_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """What New Version on a card costs before you click: `per_version` × `count` = `total` credits, the model and
        task its refs lead to (none: text-to-image; one: reference; more: multi-reference), the refs it will use and any
        it leaves out past the model's reference cap (`dropped`, `cap`), with your balance.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
        """
        account = account_for(services, token, profile)
        required(card_id=card_id)
        quote = projects.quote_version(account, card_id)
        return dict(quote, balance=account.balance, unlimited=account.unlimited,
                    affordable=account.unlimited or account.balance >= quote["total"])

    @user_errors
    def versions_new(token: str = "", card_id: str = "", prompt: str = "", refined: str = "", wait: bool = False,
                     idempotency_key: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """New Version: start the card's `count` versions at once, each its own paid request at /version_quote's price
        (each refunded if it fails; at most 5 generate at once on a card). Answers at once with `version_ids` (poll
        /card or /version) unless `wait`.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
            prompt: the prompt as typed ("" = the card's saved draft); it is kept with each version.
            refined: the prompt that runs, e.g. the refine chat's proposal ("" = the prompt).
            wait: true answers once every version has finished (with `versions`, each as /version shows it).
            idempotency_key: send the same key again to get the same versions without being charged twice.
        """
        account = account_for(services, token, profile)
        required(card_id=card_id)
        started = projects.new_versions(account, card_id, prompt=prompt or None, refined=refined or None,
                                        idempotency_key=idempotency_key or None)
        if wait:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                shown = [projects.version(account, v) for v in started["version_ids"]]
                if all(v["status"] != "generating" for v in shown):
                    break
                time.sleep(0.25)
            started = dict(started, versions=[projects.version(account, v) for v in started["version_ids"]])
        return dict(started, balance=services.identity.account(account.id).balance)

    @user_errors
    def version_upload(token: str = "", card_id: str = "", upload: str | None = None, prompt: str = "",
                       profile: gr.OAuthProfile | None = None) -> dict:
        """Upload your own version (an image edited elsewhere): it becomes the card's next version, marked uploaded. Free;
        the upload checks and the output check apply, and its metadata is stripped.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
            upload: the image (PNG, JPEG or WEBP).
            prompt: what it shows, kept with the version ("" = none).
        """
        account = account_for(services, token, profile)
        required(card_id=card_id, upload=upload)
        return projects.upload_version(account, card_id, upload, prompt)

    # -- the refine chat ---------------------------------------------------------------------------------------
    @user_errors
    def refine(token: str = "", card_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """A card's refine chat: its messages (each answer with the full prompt it proposes), the phase (before the card's
        first version: clarifying `questions` with suggestions; after: one change at a time), the refiner (a language
        model at its price per message, or the free offline refiner, which says so) and the New Version `offer`.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
        """
        account = account_for(services, token, profile)
        required(card_id=card_id)
        return projects.refine_state(account, card_id)

    @user_errors
    def refine_suggest(token: str = "", card_id: str = "", picked: list[str] | None = None, prompt: str = "",
                       idempotency_key: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Before a generation: work clicked suggestions (or your own answers to the questions) into the prompt. The
        answer proposes the full prompt (`proposal`); New Version with `refined` = it runs it. Free offline; through a
        language model, one chat message at its price.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
            picked: the suggestions picked (from /refine's `questions`) or your own short answers, up to 6.
            prompt: the prompt to refine ("" = the chat's latest proposal, else the latest version's, else the draft).
            idempotency_key: send the same key again to get the first answer without being charged twice.
        """
        account = account_for(services, token, profile)
        required(card_id=card_id, picked=picked)
        return projects.refine_suggest(account, card_id, picked, prompt=prompt or None, idempotency_key=idempotency_key or None)

    @user_errors
    def refine_change(token: str = "", card_id: str = "", instruction: str = "", prompt: str = "",
                      idempotency_key: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """After a generation: one change to the prompt at a time ("closer", "remove the hat", "switch to profile angle").
        The answer proposes the full prompt (`proposal`). Free offline; through a language model, one chat message at its
        price.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
            instruction: the one change to make.
            prompt: the prompt to change ("" = the chat's latest proposal, else the latest version's, else the draft).
            idempotency_key: send the same key again to get the first answer without being charged twice.
        """
        account = account_for(services, token, profile)
        required(card_id=card_id, instruction=instruction)
        return projects.refine_change(account, card_id, instruction, prompt=prompt or None,
                                      idempotency_key=idempotency_key or None)

    @user_errors
    def refine_clear(token: str = "", card_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Start a card's refine chat again (versions keep the prompts they ran with).

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
        """
        account = account_for(services, token, profile)
        required(card_id=card_id)
        return projects.refine_clear(account, card_id)

    functions = {"version_quote": version_quote, "refine": refine, "refine_clear": refine_clear}
    for name, fn in functions.items():
        api(services, fn, api_name=name)
    # paid: queued with the tab's own events, one run slot each (as /chat_send)
    for name, fn in (("versions_new", versions_new), ("refine_suggest", refine_suggest), ("refine_change", refine_change)):
        public(services, fn, [gr.JSON(visible=False)], api_name=name)
    public(services, version_upload, [gr.JSON(visible=False)], api_name="version_upload", files=("upload",))
    functions.update(versions_new=versions_new, version_upload=version_upload, refine_suggest=refine_suggest,
                     refine_change=refine_change)
    return functions
