"""Research endpoints (the Research tab calls the same functions): prompt sets, grids (quote, run, poll, list,
resume, export) and the arenas (round, vote, leaderboard, votes export). Grids run in the background: /grid_run
answers with a grid id at once and /grid polls it, for gradio_client and MCP alike."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from services.container import Services
from services.research import exports
from services.research.grids import GridSpec
from services.research.prompt_sets import parse_upload, summaries

from .api import api, public, required
from .errors import user_errors
from .session import account_for

MAX_UPLOAD = 256_000
DECLARED = ("prompts", "prompt_set", "category", "prompt_limit", "prompt_file", "models", "seeds", "surface", "axis", "values",
            "figure_id", "aspect_ratio", "resolution")


def numbers(text: str, kind=int) -> list:
    """'1, 2, 3' -> [1, 2, 3] (values of a settings axis may be words: face paths)."""
    items = [t.strip() for t in str(text or "").replace(";", ",").split(",") if t.strip()]
    out = []
    for item in items:
        try:
            out.append(kind(item))
        except ValueError:
            if kind is int:
                raise gr.Error(f"Seeds are whole numbers separated by commas; {item!r} is not one.") from None
            out.append(item)
    return out


def spec_from(services: Services, account, *, prompts: list[str], prompt_set: str, category: str, prompt_limit: int,
              prompt_file: str | None, models: list[str], seeds: str, surface: str, axis: str, values: str, figure_id: str,
              aspect_ratio: str, resolution: str) -> GridSpec:
    """The grid a visitor declared: their own prompts, a shipped prompt set (optionally one category, the first N), or
    an uploaded txt / CSV / JSONL set (bounded and checked against the prompt policy per prompt)."""
    source = ""
    if prompt_file:
        path = Path(prompt_file)
        if path.stat().st_size > MAX_UPLOAD:
            raise gr.Error(f"The prompt file is {path.stat().st_size // 1000} KB; upload at most {MAX_UPLOAD // 1000} KB.")
        uploaded = parse_upload(path.read_bytes(), path.name)
        prompts, source = uploaded.texts, "upload"
    elif not prompts and prompt_set:
        sets = services.prompt_sets
        if prompt_set not in sets:
            raise gr.Error(f"No prompt set {prompt_set!r}; the sets are {', '.join(sets)}.")
        chosen = [p for p in sets[prompt_set].prompts if not category or p.category == category]
        if not chosen:
            raise gr.Error(f"The set {prompt_set!r} has no category {category!r}.")
        prompts, source = [p.text for p in chosen][: prompt_limit or None], prompt_set
    return services.grids.declare(prompts=list(prompts), models=list(models), seeds=numbers(seeds), surface=surface,
                                  axis=axis, values=numbers(values, float if axis in ("steps", "guidance", "likeness") else str),
                                  figure_id=figure_id, aspect_ratio=aspect_ratio, resolution=resolution, prompt_set=source)


def register(services: Services) -> dict[str, Any]:
    """The research endpoints, inside the app's Blocks; returns the functions for the tab."""

    def declare(given: dict[str, Any]) -> tuple[Any, GridSpec]:
        """The caller's account and the grid its arguments declare (grid_quote and grid_run take the same ones)."""
        account = account_for(services, given["token"], given["profile"])
        given = {k: v for k, v in given.items() if k in DECLARED}  # the parameters (locals() also holds closures)
        required(models=given["models"])
        given.update(models=given["models"] or [], prompts=given["prompts"] or [])
        return account, spec_from(services, account, **given)

    def prompt_sets() -> list[dict]:
        """The shipped prompt sets (presets/prompt_sets/): id, title, licence, how many prompts, categories."""
        return summaries(services.prompt_sets)

    @user_errors
    def grid_quote(token: str = "", models: list[str] | None = None, prompts: list[str] | None = None, prompt_set: str = "starter",
                   category: str = "", prompt_limit: int = 4, prompt_file: str | None = None, seeds: str = "1",
                   surface: str = "text-to-image", axis: str = "", values: str = "", figure_id: str = "",
                   aspect_ratio: str = "1:1", resolution: str = "1K", profile: gr.OAuthProfile | None = None) -> dict:
        """The price of a grid before it runs: cells (prompts x models x seeds x values) and credits per model, checked
        against plans.toml's cap and every model, size and prompt.

        Args:
            token: your session token from /session_start.
            models: 2 to 8 model ids from /models (text-to-image; for remix / advanced, models that keep a face).
            prompts: your own prompts (they replace prompt_set).
            prompt_set: a set id from /prompt_sets, used when prompts is empty (default: the starter set).
            category: only this category of the prompt set ("" = all).
            prompt_limit: only the first N prompts of the set (default 4; 0 = all).
            prompt_file: your own prompts as a .txt (one per line), .csv (a prompt column) or .jsonl file, up to 256 KB.
            seeds: comma-separated seeds, up to 8 (-1 draws a random one); every cell of a seed's row shares it.
            surface: text-to-image, remix or advanced (remix / advanced run on figure_id).
            axis: "" or a settings axis: steps or guidance (text-to-image), likeness or face_path (remix, advanced).
            values: the axis' comma-separated values, up to 6.
            figure_id: one of your figures (remix and advanced).
            aspect_ratio: one every picked model offers.
            resolution: a tier every picked model offers at that ratio.
        """
        return services.grids.quote(*declare(locals()))

    @user_errors
    def grid_run(token: str = "", models: list[str] | None = None, prompts: list[str] | None = None, prompt_set: str = "starter",
                 category: str = "", prompt_limit: int = 4, prompt_file: str | None = None, seeds: str = "1",
                 surface: str = "text-to-image", axis: str = "", values: str = "", figure_id: str = "",
                 aspect_ratio: str = "1:1", resolution: str = "1K", profile: gr.OAuthProfile | None = None) -> dict:
        """Start a grid in the background (each cell is its own paid request; a failed cell is refunded alone) and
        answer at once with its grid_id and quote; poll /grid for progress and cells.

        Args:
            token: your session token from /session_start.
            models: 2 to 8 model ids from /models.
            prompts: your own prompts (they replace prompt_set).
            prompt_set: a set id from /prompt_sets, used when prompts is empty (default: the starter set).
            category: only this category of the prompt set ("" = all).
            prompt_limit: only the first N prompts of the set (default 4; 0 = all).
            prompt_file: your own prompts as .txt, .csv or .jsonl, up to 256 KB.
            seeds: comma-separated seeds, up to 8 (-1 draws a random one).
            surface: text-to-image, remix or advanced.
            axis: "" or steps / guidance (text-to-image), likeness / face_path (remix, advanced).
            values: the axis' comma-separated values, up to 6.
            figure_id: one of your figures (remix and advanced).
            aspect_ratio: one every picked model offers.
            resolution: a tier every picked model offers.
        """
        return services.grids.start(*declare(locals()))

    @user_errors
    def grid(token: str = "", grid_id: str = "", rows: str = "prompt", cols: str = "model",
             profile: gr.OAuthProfile | None = None) -> dict:
        """One of your grids as stored (it reopens after a reload or restart): status, progress while it runs, every
        cell (prompt, model, seed, value, seconds, credits, steps, identity score, file URL, error) and a layout of two
        axes as rows and columns.

        Args:
            token: your session token from /session_start.
            grid_id: a grid id from /grid_run or /grids.
            rows: the axis laid out as rows: prompt, model, seed or value.
            cols: the axis laid out as columns.
        """
        account = account_for(services, token, profile)
        required(grid_id=grid_id)
        return services.grids.get(account, grid_id, rows, cols)

    @user_errors
    def grids(token: str = "", profile: gr.OAuthProfile | None = None) -> list[dict]:
        """Your grids, newest first, with cells done and failed and credits charged.

        Args:
            token: your session token from /session_start.
        """
        return services.grids.listing(account_for(services, token, profile))

    @user_errors
    def grid_resume(token: str = "", grid_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Run a stopped or interrupted grid's unfinished cells (finished cells are never paid twice).

        Args:
            token: your session token from /session_start.
            grid_id: a grid id from /grids.
        """
        account = account_for(services, token, profile)
        required(grid_id=grid_id)
        return services.grids.resume(account, grid_id)

    folder = services.settings.data_dir / "exports"

    @user_errors
    def grid_export(token: str = "", grid_id: str = "", form: str = "parquet", profile: gr.OAuthProfile | None = None) -> str:
        """A finished grid as a `datasets` dataset: each cell's image (the stored PNG) with every setting (JSON), seed,
        model id and revision, seconds, credits and identity score.

        Args:
            token: your session token from /session_start.
            grid_id: a grid id from /grids.
            form: parquet (one Parquet file) or dataset (datasets' save_to_disk folder, zipped).
        """
        account = account_for(services, token, profile)
        required(grid_id=grid_id)
        rows = exports.grid_rows(services, account, grid_id)
        return str(exports.write(rows, folder / account.id[:16], grid_id, form, types=exports.GRID_TYPES))

    @user_errors
    def arena_export(token: str = "", kind: str = "general", form: str = "parquet", profile: gr.OAuthProfile | None = None) -> str:
        """An arena's votes as a `datasets` dataset: both images, prompt, seed, full settings, models, left/right, the
        outcome, the hashed voter and the time (QA sessions: every vote; anyone else: their own).

        Args:
            token: your session token from /session_start.
            kind: general or likeness.
            form: parquet or dataset (save_to_disk, zipped).
        """
        account = account_for(services, token, profile)
        rows = exports.vote_rows(services, account, kind)
        return str(exports.write(rows, folder / account.id[:16], f"votes-{kind}", form, images=("left_image", "right_image"),
                                 types=exports.VOTE_TYPES))

    @user_errors
    def identity_export(token: str = "", figure_id: str = "", form: str = "parquet", profile: gr.OAuthProfile | None = None) -> str:
        """The identity monitor's scores of one of your figures as a `datasets` dataset: each output's image with its
        SimRef per recogniser, engine, copy-paste flag, surface, model and time (lowest SimRef first).

        Args:
            token: your session token from /session_start.
            figure_id: one of your figures.
            form: parquet or dataset (save_to_disk, zipped).
        """
        account = account_for(services, token, profile)
        required(figure_id=figure_id)
        rows = exports.identity_rows(services, account, figure_id)
        return str(exports.write(rows, folder / account.id[:16], f"identity-{figure_id}", form, types=exports.IDENTITY_TYPES))

    @user_errors
    def dataset_push(token: str = "", what: str = "votes", grid_id: str = "", figure_id: str = "", kind: str = "general", hub_repo: str = "",
                     hub_token: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Push a grid or an arena's votes to a private dataset repository on the Hub (your repo and write token; the
        token is used for this call only and never stored).

        Args:
            token: your session token from /session_start.
            what: votes (default: an arena's votes), grid or identity (a figure's identity scores).
            grid_id: the grid (what=grid).
            figure_id: the figure (what=identity).
            kind: the arena (what=votes): general or likeness.
            hub_repo: your dataset repository, user/name (created private if missing).
            hub_token: a Hub token that may write to it.
        """
        account = account_for(services, token, profile)
        required(hub_repo=hub_repo, hub_token=hub_token)
        if what == "grid":
            required(grid_id=grid_id)
            url = exports.push(exports.grid_rows(services, account, grid_id), hub_repo, hub_token, types=exports.GRID_TYPES,
                               description=f"Grid {grid_id} from the Character Playground.")
        elif what == "votes":
            url = exports.push(exports.vote_rows(services, account, kind), hub_repo, hub_token, images=("left_image", "right_image"),
                               types=exports.VOTE_TYPES, description=f"{kind} arena votes from the Character Playground.")
        elif what == "identity":
            required(figure_id=figure_id)
            url = exports.push(exports.identity_rows(services, account, figure_id), hub_repo, hub_token, types=exports.IDENTITY_TYPES,
                               description=f"Identity monitor scores of figure {figure_id} from the Character Playground.")
        else:
            raise gr.Error(f"Push votes, a grid or identity scores, not {what!r}.")
        return {"url": url}

    @user_errors
    def arena_round(token: str = "", kind: str = "general", figure_id: str = "", generate: bool = False,
                    models: list[str] | None = None, prompt: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """A blind battle: two anonymous outputs of one prompt and seed (general: two models; likeness: two model and
        face path pairs on one of your figures, beside its canonical image). Drawn from stored grid cells when a pair is
        left; else with generate=true two new outputs, charged at the price the refusal named.

        Args:
            token: your session token from /session_start.
            kind: general or likeness.
            figure_id: one of your figures (likeness).
            generate: make a new pair when no stored pair is left (charged).
            models: the models a generated pair may use ([] = any).
            prompt: a generated pair's prompt ("" = one from the starter set).
        """
        account = account_for(services, token, profile)
        return services.arena.round(account, kind, figure_id=figure_id, generate=bool(generate), prompt=prompt, models=models or None)

    @user_errors
    def arena_vote(token: str = "", battle_id: str = "", outcome: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Vote on your battle (once), then see which models made the two images.

        Args:
            token: your session token from /session_start.
            battle_id: a battle id from /arena_round.
            outcome: left, right, tie or bad (both bad).
        """
        account = account_for(services, token, profile)
        required(battle_id=battle_id, outcome=outcome)
        return services.arena.vote(account, battle_id, outcome)

    @user_errors
    def arena_leaderboard(kind: str = "general", include_qa: bool = False, token: str = "", mine: bool = False,
                          profile: gr.OAuthProfile | None = None) -> dict:
        """Bradley-Terry ratings with 95% intervals and vote counts per competitor (likeness: per model and face path,
        with the mean identity score); QA sessions' votes are left out unless include_qa.

        Args:
            kind: general or likeness.
            include_qa: count QA sessions' votes too.
            token: your session token (with mine=true).
            mine: your own leaderboard, once you cast enough votes.
        """
        account = account_for(services, token, profile) if mine else None
        return services.arena.leaderboard(kind, bool(include_qa), account)

    for fn in (prompt_sets, grid_quote, grid, grids, grid_resume, arena_vote, arena_leaderboard, dataset_push):
        api(services, fn, api_name=fn.__name__)
    # a generated pair is two paid runs: as many at once as there are run slots (the slots decide who waits)
    api(services, arena_round, api_name="arena_round", concurrency_limit=services.settings.event_concurrency,
        concurrency_id="arena_round")
    for fn, files in ((grid_run, ("prompt_file",)),):
        public(services, fn, [gr.JSON(visible=False)], api_name=fn.__name__, files=files, concurrency_limit=None)
    for fn in (grid_export, arena_export, identity_export):
        public(services, fn, [gr.File(visible=False)], api_name=fn.__name__, concurrency_limit=None)
    return {f.__name__: f for f in (prompt_sets, grid_quote, grid_run, grid, grids, grid_resume, grid_export, arena_round,
                                    arena_vote, arena_leaderboard, arena_export, identity_export, dataset_push)}


