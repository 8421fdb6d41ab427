"""The projects API: projects and members, cards with drafts and settings, directions and forks, one version (view,
restore, review, favourite). What makes versions and prompts (the price of New Version, New Version, uploaded versions,
the refine chat) is in ui/projects_api_runs.py; refs, scenes, the feed and the showcase in ui/projects_api_refs.py.
The Projects tab (ui/projects.py) calls the same service functions.

Every id is a project's: a caller who is not a member of its project gets the same answer for one that exists and one
that does not ("No project ... among yours", "No card ... in your projects")."""
from __future__ import annotations

from typing import Any

import gradio as gr

from services.container import Services

from .api import api, required
from .errors import user_errors
from .projects_api_refs import register_refs
from .projects_api_runs import register_runs
from .session import account_for

def keep(value: Any) -> Any:
    """An optional API setting: "" and null keep the card's value (the service then ignores it)."""
    return None if value in ("", None) else value


def register(services: Services) -> dict[str, Any]:
    """Every projects endpoint, inside the app's Blocks; returns the functions by name."""
    projects = services.projects

    # -- projects and members -----------------------------------------------------------------------------------
    @user_errors
    def project_create(token: str = "", name: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Create a project (you are its owner): cards, refs, scenes and versions belong to it, and only its members see
        them. Free. Answers with the project: id, name, your role, members and (for you, the owner) its invite code.

        Args:
            token: your session token from /session_start.
            name: the project's name (1 to 80 characters).
        """
        return projects.create_project(account_for(services, token, profile), name)

    @user_errors
    def projects_list(token: str = "", archived: bool = False, profile: gr.OAuthProfile | None = None) -> list[dict]:
        """The projects you are a member of, most recently changed first: id, name, your role (owner or member), archived.

        Args:
            token: your session token from /session_start.
            archived: true lists archived projects too.
        """
        return projects.projects(account_for(services, token, profile), archived=bool(archived))

    @user_errors
    def project(token: str = "", project_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """One of your projects: name, your role, archived, its members (account id, name, role) and, for its owner, the
        invite code (share it as a link: anyone who opens it may join).

        Args:
            token: your session token from /session_start.
            project_id: a project id from /projects.
        """
        account = account_for(services, token, profile)
        required(project_id=project_id)
        return projects.project(account, project_id)

    @user_errors
    def project_rename(token: str = "", project_id: str = "", name: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Rename a project (its owner only).

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
            name: the new name (1 to 80 characters).
        """
        account = account_for(services, token, profile)
        required(project_id=project_id)
        return projects.rename_project(account, project_id, name)

    @user_errors
    def project_archive(token: str = "", project_id: str = "", archived: bool = True, profile: gr.OAuthProfile | None = None) -> dict:
        """Archive a project (its owner only): it leaves the selector and becomes read-only for every member; false
        restores it.

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
            archived: true archives, false restores.
        """
        account = account_for(services, token, profile)
        required(project_id=project_id)
        return projects.archive_project(account, project_id, bool(archived))

    @user_errors
    def project_join(token: str = "", invite: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Join a project through its invite link (the whole link, or the code after `invite=`). Free.

        Args:
            token: your session token from /session_start.
            invite: the invite link or its code, from the project's owner.
        """
        account = account_for(services, token, profile)
        required(invite=invite)
        return projects.join_project(account, invite_code(invite))

    @user_errors
    def project_member_add(token: str = "", project_id: str = "", member_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Add a member by their account id (the project's owner only); the id is `account` in their /session_start
        answer, and the Projects tab shows it as "your member id".

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
            member_id: the account id of the person to add.
        """
        account = account_for(services, token, profile)
        required(project_id=project_id, member_id=member_id)
        return projects.add_member(account, project_id, member_id)

    @user_errors
    def project_leave(token: str = "", project_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Leave a project you are a member of (the owner archives instead); you lose access at once.

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
        """
        account = account_for(services, token, profile)
        required(project_id=project_id)
        return projects.leave_project(account, project_id)

    @user_errors
    def project_member_remove(token: str = "", project_id: str = "", member_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Remove a member (the project's owner only): they lose access to everything in it at once.

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
            member_id: the member's account id (from /project's members).
        """
        account = account_for(services, token, profile)
        required(project_id=project_id, member_id=member_id)
        return projects.remove_member(account, project_id, member_id)

    # -- cards, drafts, settings ----------------------------------------------------------------------------------
    @user_errors
    def card_create(token: str = "", project_id: str = "", title: str = "", prompt: str = "", resolution: str = "",
                    aspect_ratio: str = "", model_class: str = "", count: int | None = None,
                    profile: gr.OAuthProfile | None = None) -> dict:
        """A new card in a project: a prompt you edit (its draft), settings, refs and versions. Free. Answers with the card
        as /card shows it.

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
            title: the card's title ("" = "Card N").
            prompt: its first draft ("" = empty).
            resolution: 1K, 2K or 4K ("" = 1K).
            aspect_ratio: 1:1, 16:9, 9:16, 4:3 or 3:4 ("" = 1:1).
            model_class: pro (the highest quality) or flash (the fastest) ("" = pro); which model each means is presets data.
            count: versions one New Version starts, 1 to 5 (null = 1).
        """
        account = account_for(services, token, profile)
        required(project_id=project_id)
        settings = {k: v for k, v in {"resolution": keep(resolution), "aspect_ratio": keep(aspect_ratio),
                                      "model_class": keep(model_class), "count": keep(count)}.items() if v is not None}
        return projects.create_card(account, project_id, title, prompt, settings)

    @user_errors
    def cards(token: str = "", project_id: str = "", profile: gr.OAuthProfile | None = None) -> list[dict]:
        """A project's cards, most recently changed first: id and title.

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
        """
        account = account_for(services, token, profile)
        required(project_id=project_id)
        return projects.cards(account, project_id)

    @user_errors
    def card(token: str = "", card_id: str = "", version_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """A card as its page shows it: the draft and its `revision` (send it back with /card_draft), settings, scene, the
        direction shown and every direction (the strip), that direction's refs and versions (number, file URL, review,
        favourite, uploaded, status), `latest`, the version `viewing` (the latest unless `version_id` names one), the
        banner naming it, and how many are `generating`.

        Args:
            token: your session token from /session_start.
            card_id: a card id from /cards.
            version_id: a version of this card to view ("" = the latest of the shown direction).
        """
        account = account_for(services, token, profile)
        required(card_id=card_id)
        return projects.card(account, card_id, version_id)

    @user_errors
    def card_rename(token: str = "", card_id: str = "", title: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Rename a card.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
            title: the new title (1 to 120 characters).
        """
        account = account_for(services, token, profile)
        required(card_id=card_id)
        return projects.rename_card(account, card_id, title)

    @user_errors
    def card_draft(token: str = "", card_id: str = "", draft: str = "", revision: int = -1,
                   profile: gr.OAuthProfile | None = None) -> dict:
        """Save a card's prompt draft (free; it survives reloads and restarts). `revision` is the one your text was
        written on (/card's `revision`): if another member saved since, the save is refused with a message saying so and
        nothing is overwritten; read the card again and save on its new revision.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
            draft: the prompt (up to 2,000 characters; "" empties it).
            revision: the card's revision your text was written on (from /card or your last save).
        """
        account = account_for(services, token, profile)
        required(card_id=card_id)
        if revision < 0:
            raise gr.Error("Missing revision: send the card's revision from /card (the one your text was written on).")
        return projects.save_draft(account, card_id, draft, revision)

    @user_errors
    def card_settings(token: str = "", card_id: str = "", resolution: str = "", aspect_ratio: str = "", model_class: str = "",
                      count: int | None = None, profile: gr.OAuthProfile | None = None) -> dict:
        """Change a card's settings; "" or null keeps a setting. Free.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
            resolution: 1K, 2K or 4K.
            aspect_ratio: 1:1, 16:9, 9:16, 4:3 or 3:4.
            model_class: pro (the highest quality) or flash (the fastest).
            count: versions one New Version starts, 1 to 5.
        """
        account = account_for(services, token, profile)
        required(card_id=card_id)
        return projects.card_settings(account, card_id, resolution=keep(resolution), aspect_ratio=keep(aspect_ratio),
                                      model_class=keep(model_class), count=keep(count))

    # -- directions and forks -------------------------------------------------------------------------------------
    @user_errors
    def card_direction(token: str = "", card_id: str = "", direction_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Show another direction of a card (the direction strip): its refs and versions; New Version continues it.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
            direction_id: one of the card's `directions`.
        """
        account = account_for(services, token, profile)
        required(card_id=card_id, direction_id=direction_id)
        return projects.switch_direction(account, card_id, direction_id)

    @user_errors
    def direction_rename(token: str = "", direction_id: str = "", name: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Rename a direction (a fork's name is editable).

        Args:
            token: your session token from /session_start.
            direction_id: a direction of one of your projects' cards.
            name: the new name (1 to 80 characters).
        """
        account = account_for(services, token, profile)
        required(direction_id=direction_id)
        return projects.rename_direction(account, direction_id, name)

    @user_errors
    def version_fork(token: str = "", version_id: str = "", name: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Fork from a finished version: a new named direction whose first ref is that version's image (saved as a ref);
        the card switches to it, and its next version's parent is the source version. Free. Answers with the card.

        Args:
            token: your session token from /session_start.
            version_id: a finished version of one of your projects' cards.
            name: the new direction's name ("" = "Fork of vN").
        """
        account = account_for(services, token, profile)
        required(version_id=version_id)
        return projects.fork(account, version_id, name)

    # -- one version ----------------------------------------------------------------------------------------------
    @user_errors
    def version(token: str = "", version_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """One version with its exact lineage: number, the prompt as typed and the refined prompt that ran, settings (model,
        task, seed, resolution, ratio, class, scene, dropped refs), refs, status (generating, done, failed, uploaded),
        file URL, review, favourite, direction and every parent up to the card's first version.

        Args:
            token: your session token from /session_start.
            version_id: a version id from /card or /feed.
        """
        account = account_for(services, token, profile)
        required(version_id=version_id)
        return projects.version(account, version_id)

    @user_errors
    def version_restore(token: str = "", version_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Restore: put a version's prompt (as it was typed) back in the card's editor as a new draft revision, and show
        its direction. Answers with the card, viewing that version.

        Args:
            token: your session token from /session_start.
            version_id: a version of one of your projects' cards.
        """
        account = account_for(services, token, profile)
        required(version_id=version_id)
        return projects.restore(account, version_id)

    @user_errors
    def version_review(token: str = "", version_id: str = "", review: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Approve (into the project's showcase), reject, or clear the review of one version; no other version changes.
        Free.

        Args:
            token: your session token from /session_start.
            version_id: a version of one of your projects' cards.
            review: approved, rejected or none.
        """
        account = account_for(services, token, profile)
        required(version_id=version_id, review=review)
        return projects.review_version(account, version_id, review)

    @user_errors
    def version_favourite(token: str = "", version_id: str = "", favourite: bool = True, profile: gr.OAuthProfile | None = None) -> dict:
        """Mark one version ★ favourite (false takes the star off). Free.

        Args:
            token: your session token from /session_start.
            version_id: a version of one of your projects' cards.
            favourite: true stars it, false unstars it.
        """
        account = account_for(services, token, profile)
        required(version_id=version_id)
        return projects.favourite(account, version_id, bool(favourite))

    functions = {
        "project_create": project_create, "projects": projects_list, "project": project, "project_rename": project_rename,
        "project_archive": project_archive, "project_join": project_join, "project_member_add": project_member_add,
        "project_leave": project_leave, "project_member_remove": project_member_remove, "card_create": card_create,
        "cards": cards, "card": card, "card_rename": card_rename, "card_draft": card_draft, "card_settings": card_settings,
        "card_direction": card_direction, "direction_rename": direction_rename, "version_fork": version_fork,
        "version": version, "version_restore": version_restore, "version_review": version_review,
        "version_favourite": version_favourite,
    }
    for name, fn in functions.items():
        api(services, fn, api_name=name)
    functions.update(register_runs(services))
    functions.update(register_refs(services))
    return functions


def invite_code(text: str) -> str:
    """The code of an invite link (`...?invite=CODE`), or the text itself when it is the code."""
    text = (text or "").strip()
    if "invite=" in text:
        text = text.split("invite=", 1)[1].split("&", 1)[0].split("#", 1)[0]
    return text.strip()
