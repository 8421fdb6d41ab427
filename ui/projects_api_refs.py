"""The projects API's refs (upload, a version's shot, a figure's canonical image; attach to a card), scenes and their
pools of shots, the feed and the showcase (registered by ui/projects_api.py)."""
from __future__ import annotations

from typing import Any

import gradio as gr

from services.container import Services

from .api import api, public, required
from .errors import user_errors
from .session import account_for


def register_refs(services: Services) -> dict[str, Any]:
    """The refs, scenes, feed and showcase endpoints, inside the app's Blocks; returns the functions by name."""
    projects = services.projects

    # -- refs -------------------------------------------------------------------------------------------------
    @user_errors
    def ref_add(token: str = "", project_id: str = "", kind: str = "", name: str = "", upload: str | None = None,
                profile: gr.OAuthProfile | None = None) -> dict:
        """Upload a photo as a project ref (free): a character, a location or an object that guides generation. The
        upload checks and the output check apply; its metadata is stripped.

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
            kind: character, location or object.
            name: the ref's name (1 to 80 characters).
            upload: the photo (PNG, JPEG or WEBP).
        """
        account = account_for(services, token, profile)
        required(project_id=project_id, kind=kind, upload=upload)
        return projects.add_ref(account, project_id, kind, name, upload)

    @user_errors
    def ref_shot(token: str = "", version_id: str = "", name: str = "", kind: str = "object",
                 profile: gr.OAuthProfile | None = None) -> dict:
        """Save a version's image as a ref of its project ("save shot as ref"; free): the approve, save-as-ref, generate
        cycle that makes later versions more consistent.

        Args:
            token: your session token from /session_start.
            version_id: a finished version of one of your projects' cards.
            name: the ref's name ("" = "vN").
            kind: character, location or object.
        """
        account = account_for(services, token, profile)
        required(version_id=version_id)
        return projects.save_shot(account, version_id, name=name, kind=kind)

    @user_errors
    def ref_figure(token: str = "", project_id: str = "", figure_id: str = "", name: str = "",
                   profile: gr.OAuthProfile | None = None) -> dict:
        """One of your figures' canonical images as a character ref of a project (a copy without its settings; the figure
        itself stays private). Free.

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
            figure_id: one of your figures (from /figures).
            name: the ref's name ("" = the figure's name).
        """
        account = account_for(services, token, profile)
        required(project_id=project_id, figure_id=figure_id)
        return projects.ref_from_figure(account, project_id, figure_id, name)

    @user_errors
    def refs(token: str = "", project_id: str = "", profile: gr.OAuthProfile | None = None) -> list[dict]:
        """A project's refs, newest first: id, kind, name, file URL, source (upload, shot, figure) and the version a shot
        came from.

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
        """
        account = account_for(services, token, profile)
        required(project_id=project_id)
        return projects.refs(account, project_id)

    @user_errors
    def card_ref(token: str = "", card_id: str = "", ref_id: str = "", attached: bool = True,
                 profile: gr.OAuthProfile | None = None) -> dict:
        """Attach one of the project's refs to the direction a card shows (false takes it off). New Version passes the
        attached refs to a reference-capable model, within its reference cap. Free.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
            ref_id: a ref of the card's project (from /refs).
            attached: true attaches it, false detaches it.
        """
        account = account_for(services, token, profile)
        required(card_id=card_id, ref_id=ref_id)
        return projects.attach_ref(account, card_id, ref_id, bool(attached))

    # -- scenes -----------------------------------------------------------------------------------------------
    @user_errors
    def scene_create(token: str = "", project_id: str = "", name: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """A new scene in a project: a named pool of shots that a card set in it passes as references. Free.

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
            name: the scene's name (1 to 80 characters).
        """
        account = account_for(services, token, profile)
        required(project_id=project_id)
        return projects.create_scene(account, project_id, name)

    @user_errors
    def scenes(token: str = "", project_id: str = "", profile: gr.OAuthProfile | None = None) -> list[dict]:
        """A project's scenes, oldest first, each with its pool's shots (refs) in order.

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
        """
        account = account_for(services, token, profile)
        required(project_id=project_id)
        return projects.scenes(account, project_id)

    @user_errors
    def scene_shot(token: str = "", scene_id: str = "", ref_id: str = "", pooled: bool = True,
                   profile: gr.OAuthProfile | None = None) -> dict:
        """Put one of the project's refs into a scene's pool of shots (last), or take it out (`pooled` false). Free.

        Args:
            token: your session token from /session_start.
            scene_id: a scene of one of your projects.
            ref_id: a ref of the same project (a version becomes one through /ref_shot).
            pooled: true adds the shot, false removes it.
        """
        account = account_for(services, token, profile)
        required(scene_id=scene_id, ref_id=ref_id)
        change = projects.add_shot if pooled else projects.remove_shot
        return change(account, scene_id, ref_id)

    @user_errors
    def card_scene(token: str = "", card_id: str = "", scene_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Generate a card in a scene's context: New Version then passes the pool's shots as references too, after the
        direction's refs and within the model's cap. "" takes the card out of any scene. Free.

        Args:
            token: your session token from /session_start.
            card_id: one of your projects' cards.
            scene_id: a scene of the card's project ("" = none).
        """
        account = account_for(services, token, profile)
        required(card_id=card_id)
        return projects.set_card_scene(account, card_id, scene_id)

    # -- feed and showcase ------------------------------------------------------------------------------------
    @user_errors
    def feed(token: str = "", project_id: str = "", approved: bool = False, mine: bool = False, search: str = "",
             view: str = "cards", page: int = 1, profile: gr.OAuthProfile | None = None) -> dict:
        """A project's finished versions, newest first, filtered in the database: `approved` only, `mine` only, and a
        search of the prompts (at least 2 characters; 1 is refused). `view` cards gives each version's card title,
        prompt and refined prompt; gallery the compact form (file URL, number, review, favourite, uploaded).

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
            approved: true lists approved versions only.
            mine: true lists only the versions you made.
            search: words of the prompt to look for ("" = all; at least 2 characters).
            view: cards or gallery.
            page: the page (48 versions a page).
        """
        account = account_for(services, token, profile)
        required(project_id=project_id)
        return projects.feed(account, project_id, approved=bool(approved), mine=bool(mine), search=search, view=view,
                             page=max(1, page))

    @user_errors
    def showcase(token: str = "", project_id: str = "", view: str = "gallery", page: int = 1,
                 profile: gr.OAuthProfile | None = None) -> dict:
        """A project's shared showcase: its approved versions, newest first.

        Args:
            token: your session token from /session_start.
            project_id: one of your projects.
            view: gallery or cards.
            page: the page (48 versions a page).
        """
        account = account_for(services, token, profile)
        required(project_id=project_id)
        return projects.showcase(account, project_id, view=view, page=max(1, page))

    functions = {"ref_shot": ref_shot, "ref_figure": ref_figure, "refs": refs, "card_ref": card_ref,
                 "scene_create": scene_create, "scenes": scenes, "scene_shot": scene_shot, "card_scene": card_scene,
                 "feed": feed, "showcase": showcase}
    for name, fn in functions.items():
        api(services, fn, api_name=name)
    public(services, ref_add, [gr.JSON(visible=False)], api_name="ref_add", files=("upload",))
    functions.update(ref_add=ref_add)
    return functions
