"""Challenge modes: how a visitor's turn moves each of the character's 1-3 challenges toward its goal.

Two judges, and each turn's record names the one that ran:
- the chat model itself (`MODEL`), when it runs on real weights or at a provider: a structured prompt (the goals
  numbered, the message quoted) asks for JSON, one boolean per goal; it is an unpriced inner stage of the same paid
  turn (the message's price covers it). An answer that is not that JSON falls back to the rules for that turn.
- the deterministic rule judge (`RULES`), offline and in the preview (whose tiny model writes noise): a turn that uses
  a word of the challenge's goal or progress hint (matched on word stems, common words ignored) moves it.
Either moves a challenge by STEP percent per turn that works toward it. At 100 % the challenge's target behaviour is
unlocked: it joins the character's instructions for the rest of the conversation (prompt.hidden_instructions)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

RULES = "rules"  # the judge's name as records and the UI show it
STEP = 25  # percent per turn that works toward a goal: four such turns unlock it
STEM = 5  # letters compared: "compliment", "complimenting" and "compliments" match

STOPWORDS = frozenset("""
a about after again all also an and any are as at be because been before being but by can could did do does doing
down each few for from further get gets had has have having he her here hers him his how i if in into is it its just
like make makes me more most my no nor not now of off on once only or other our out over own same she should so some
such than that the their them then there these they this those through to too under until up very was we were what
when where which while who whom why will with would you your yours user users character player goal earn unlock
reach progress bar until times percent
""".split())


def _stems(text: str) -> set[str]:
    return {w[:STEM] for w in re.findall(r"[a-z]+", (text or "").casefold()) if len(w) >= 4 and w not in STOPWORDS}


@dataclass(frozen=True)
class Verdict:
    index: int  # which challenge
    delta: int  # percent added by this turn
    progress: int  # after this turn
    unlocked: bool  # this turn reached 100 %
    matched: tuple[str, ...]  # the stems that counted


def judge_turn(message: str, challenges: list[dict[str, Any]], state: list[dict[str, Any]], turn: int) -> list[Verdict]:
    """Each challenge's verdict on one visitor turn; `state` ({"progress", "unlocked_turn"} per challenge) is updated."""
    said = _stems(message)
    verdicts = []
    for index, (challenge, current) in enumerate(zip(challenges, state)):
        if current.get("unlocked_turn") is not None:
            continue
        matched = tuple(sorted(said & _stems(f"{challenge.get('goal', '')} {challenge.get('hint', '')}")))
        delta = STEP if matched else 0
        progress = min(100, int(current.get("progress", 0)) + delta)
        unlocked = progress >= 100
        current["progress"] = progress
        if unlocked:
            current["unlocked_turn"] = turn
        verdicts.append(Verdict(index, delta, progress, unlocked, matched))
    return verdicts


def fresh_state(challenges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"progress": 0, "unlocked_turn": None} for _ in challenges]


MODEL = "model"  # the chat model judged the turn (a structured prompt; its JSON answer is read below)
JUDGE_TOKENS = 60

JUDGE_SYSTEM = ("You judge a role-play chat for a game. For each numbered goal, decide whether the user's latest message "
                "clearly works toward it. Answer with JSON only, no other text: {\"moves\": [true, false, ...]} with one "
                "boolean per goal, in order.")


def judge_messages(message: str, challenges: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """The structured prompt a chat model judges a turn with: the goals (and hints) numbered, the message quoted."""
    goals = "\n".join(f"{n}. {c.get('goal', '')} (hint: {c.get('hint', '') or 'none'})" for n, c in enumerate(challenges, 1))
    return (("system", JUDGE_SYSTEM), ("user", f"Goals:\n{goals}\n\nThe user's latest message:\n<<<{message}>>>"))


def read_moves(answer: str, count: int) -> list[bool] | None:
    """The model's verdicts: a JSON object with `moves`, one boolean per goal (None when the answer is unusable)."""
    import json

    found = re.search(r"\{.*\}", answer or "", re.S)
    try:
        moves = json.loads(found.group(0))["moves"] if found else None
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(moves, list) or len(moves) != count or not all(isinstance(m, bool) for m in moves):
        return None
    return moves


def apply_moves(moves: list[bool], state: list[dict[str, Any]], turn: int) -> list[Verdict]:
    """The model judge's verdicts applied as the rule judge's are: STEP percent per goal the turn works toward."""
    verdicts = []
    for index, (moved, current) in enumerate(zip(moves, state)):
        if current.get("unlocked_turn") is not None:
            continue
        progress = min(100, int(current.get("progress", 0)) + (STEP if moved else 0))
        current["progress"] = progress
        if progress >= 100:
            current["unlocked_turn"] = turn
        verdicts.append(Verdict(index, STEP if moved else 0, progress, progress >= 100, ()))
    return verdicts
