"""Research tab, Arena / Likeness arena / Leaderboard: blind battles and their ratings. The two images carry no
metadata and no names until the visitor has voted; a stored pair costs nothing, a new pair costs what the button says.
Every button calls the same function as its API endpoint (ui/research_api.py)."""
from __future__ import annotations

import gradio as gr

from services.container import Services
from services.research.arena import PROVISIONAL_UNDER

from .errors import user_errors
from .session import SessionUI, account_for, bar_text, optional_account

BOARD_HEADERS = ["rank", "competitor", "rating", "95% interval", "votes", "identity (mean)"]


def _board_rows(board: dict) -> list[list]:
    return [[r["rank"], r["competitor"], round(r["rating"]),
             f"provisional (under {PROVISIONAL_UNDER} votes)" if r.get("provisional") else f"{round(r['lower'])} – {round(r['upper'])}",
             r["votes"], r.get("identity", "")] for r in board["rows"]]


def _arena(services: Services, session: SessionUI, fns: dict, kind: str, tab: gr.Tab) -> None:
    prefix = "arena" if kind == "general" else "likeness"
    gr.Markdown("Two images of one prompt and seed, names hidden. Pick the better one; the models are shown after your vote."
                if kind == "general" else
                "Two images of one of your figures beside its canonical image. Which keeps the character? Names are shown after your vote.")
    with gr.Row():
        figure = gr.Dropdown([], label="Figure", allow_custom_value=True, visible=kind == "likeness", elem_id=f"{prefix}-figure")
        draw = gr.Button("Next battle (stored pair, free)", elem_id=f"{prefix}-next")
        generate = gr.Button("Generate a new pair", elem_id=f"{prefix}-generate")
    battle = gr.State(None)
    question = gr.Markdown("", elem_id=f"{prefix}-question")
    with gr.Row():
        canonical = gr.Image(label="Canonical image", visible=kind == "likeness", interactive=False, height=320, elem_id=f"{prefix}-canonical")
        left = gr.Image(label="A", interactive=False, height=320, elem_id=f"{prefix}-left")
        right = gr.Image(label="B", interactive=False, height=320, elem_id=f"{prefix}-right")
    with gr.Row():
        buttons = {outcome: gr.Button(label, elem_id=f"{prefix}-vote-{outcome}", interactive=False)
                   for outcome, label in (("left", "A is better"), ("right", "B is better"), ("tie", "Tie"), ("bad", "Both bad"))}
    revealed = gr.Markdown("", elem_id=f"{prefix}-revealed")

    def open_arena(token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        if account is None:
            return gr.update(), gr.update()
        try:
            quote = services.arena.generate_quote(account, kind)
            label = f"Generate a new pair (up to {quote['total']} credits)"
        except Exception:  # noqa: BLE001 - no models for this arena: the button says so
            label = "Generate a new pair (unavailable)"
        figures = [(f.name, f.id) for f in services.figures.list(account)] if kind == "likeness" else []
        return gr.Dropdown(choices=figures) if kind == "likeness" else gr.update(), gr.update(value=label)

    gr.on([tab.select, session.bar.change], open_arena, [session.token], [figure, generate], api_visibility="private")

    def shown(token, figure_id, make: bool, profile: gr.OAuthProfile | None = None):
        drawn = fns["arena_round"](token=token, kind=kind, figure_id=figure_id or "", generate=make, profile=profile)
        url = lambda name: str(services.store.path(name))  # noqa: E731 - gradio serves the stored (anonymous) file
        text = f"**{drawn['question']}**  \nPrompt: _{drawn['prompt']}_ · seed {drawn['seed']}" + (
            f" · charged {drawn['charged']} credits" if drawn["charged"] else " · a stored pair: free")
        votes = [gr.update(interactive=True) for _ in buttons]
        return (drawn, text, url(drawn["canonical"]) if kind == "likeness" else None, url(drawn["left"]), url(drawn["right"]), "",
                bar_text(account_for(services, token, profile)), *votes)

    outputs = [battle, question, canonical, left, right, revealed, session.bar, *buttons.values()]

    @user_errors
    def stored(token, figure_id, profile: gr.OAuthProfile | None = None):
        return shown(token, figure_id, False, profile)

    @user_errors
    def fresh(token, figure_id, profile: gr.OAuthProfile | None = None):
        return shown(token, figure_id, True, profile)

    draw.click(stored, [session.token, figure], outputs, api_visibility="private")
    generate.click(fresh, [session.token, figure], outputs, api_visibility="private")

    for outcome, button in buttons.items():
        def on_vote(token, current, profile: gr.OAuthProfile | None = None, outcome=outcome):
            if not current:
                raise gr.Error("Take a battle first: press Next battle.")
            result = fns["arena_vote"](token=token, battle_id=current["battle_id"], outcome=outcome, profile=profile)
            names = f"**A** was {result['left']} · **B** was {result['right']}"
            if kind == "likeness":
                names += f" · identity {result.get('left_identity') or '-'} / {result.get('right_identity') or '-'}"
            return (f"Your vote ({outcome}) is counted. {names}.", *[gr.update(interactive=False) for _ in buttons])

        button.click(user_errors(on_vote), [session.token, battle], [revealed, *buttons.values()], api_visibility="private")


def build(services: Services, session: SessionUI, fns: dict) -> None:
    with gr.Tab("Arena", id="research-arena") as general_tab:
        _arena(services, session, fns, "general", general_tab)
    with gr.Tab("Likeness arena", id="research-likeness") as likeness_tab:
        _arena(services, session, fns, "likeness", likeness_tab)
    with gr.Tab("Leaderboard", id="research-leaderboard") as board_tab:
        gr.Markdown("Bradley-Terry ratings from the arenas' votes (the method of LMArena's arena-rank) with 95% intervals. "
                    "QA sessions' votes are left out unless you include them.")
        with gr.Row():
            kind = gr.Radio(["general", "likeness"], value="general", label="Arena", elem_id="board-kind")
            include_qa = gr.Checkbox(False, label="Include QA votes", elem_id="board-qa")
            refresh = gr.Button("Refresh", size="sm", elem_id="board-refresh")
        summary = gr.Markdown("", elem_id="board-summary")
        table = gr.Dataframe(headers=BOARD_HEADERS, interactive=False, elem_id="board-table")
        gr.Markdown("**Your own leaderboard** (from your votes only)")
        mine = gr.Markdown("", elem_id="board-mine-note")
        mine_table = gr.Dataframe(headers=BOARD_HEADERS, interactive=False, elem_id="board-mine")
        with gr.Row():
            votes_btn = gr.Button("Export votes (Parquet; your own, or all for QA)", size="sm", elem_id="board-export")
            votes_file = gr.File(label="Votes", interactive=False, elem_id="board-votes")
    votes_btn.click(user_errors(lambda token, kind_: fns["arena_export"](token=token, kind=kind_)), [session.token, kind], [votes_file],
                    api_visibility="private")

    @user_errors
    def show(kind_, qa, token, profile: gr.OAuthProfile | None = None):
        board = fns["arena_leaderboard"](kind=kind_, include_qa=qa)
        text = f"{board['votes']} vote(s) counted." if board["votes"] else "No votes yet: vote in the arenas first."
        account = optional_account(services, token, profile)
        own = services.arena.leaderboard(kind_, qa, account) if account else {"needed": 0, "rows": []}
        note = f"Vote {own['needed']} more time(s) to see your own ratings." if own.get("needed") else ""
        return text, _board_rows(board), note, _board_rows(own)

    gr.on([board_tab.select, refresh.click, kind.change, include_qa.change], show, [kind, include_qa, session.token],
          [summary, table, mine, mine_table], api_visibility="private")
