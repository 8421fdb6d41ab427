"""Conversations with characters (see the package docstring): opening one, the visitor's turns, and the owner's 18+
switch. A reply is a paid run: one `chat` stage through the runner, priced per message (presets/plans.toml)."""
from __future__ import annotations

import random
import secrets
from typing import Any, Callable

import sqlalchemy as sa

from pipelines.types import SEED_LIMIT, GenerationRequest, StepCallback, Task

from ..accounts.identity import Account
from ..accounts.tables import characters as characters_table
from ..catalogue import Catalogue
from ..creation.characters import Characters
from ..creation.characters.profile import CharacterError
from ..runs.runner import PaidRun, PromptCheck, Runner, Stage
from ..safety.output import SafetyBlocked
from ..safety.policy import PromptRefused, Surface
from .judge import JUDGE_TOKENS, MODEL, RULES, STEP, apply_moves, fresh_state, judge_messages, judge_turn, read_moves
from .pictures import Pictures, wants_picture
from .prompt import GUARD, Persona, bounded, checked_message, hidden_instructions, leaks, macros, visible_text
from .store import HISTORY_READ, TITLE_MAX, ChatError, ChatStore

STREAM_BEHIND = 48  # characters of a streamed reply held back until the text after them has been checked
WITHHELD = "The reply was withheld ({why}) and refunded. Try saying it another way."


class Chats:
    def __init__(self, store: ChatStore, catalogue: Catalogue, runner: Runner, characters: Characters, pictures: Pictures):
        self.store = store
        self.catalogue = catalogue
        self.runner = runner
        self.characters = characters
        self.pictures = pictures

    # -- the character ------------------------------------------------------------------------------------
    def character(self, account: Account, character_id: str):
        try:
            return self.characters.get(account, character_id)
        except CharacterError:
            raise ChatError(f"No character {character_id!r} that you can open: chats are with your own characters, "
                            "verified public ones, and unlisted ones by their id.") from None

    def models(self, character) -> list[dict[str, Any]]:
        """The chat models a character names (its first is the default), or the house default when it names none."""
        named = [self.catalogue.chat_entry(m) for m in character.profile.get("chat_models") or []]
        entries = named or self.catalogue.chat_entries()[:1]
        return [{"id": e.id, "name": e.name, "price": self.catalogue.price(e, Task.CHAT, "message").total,
                 "preview": self.catalogue.is_preview(e), "runnable": bool(self.catalogue.status(e)["runnable"]),
                 "note": e.prompt_note} for e in entries]

    def surface(self, account: Account, character_id: str) -> Surface:
        """SFW unless the character's creator allows 18+ chat and the visitor is a member who confirmed their age."""
        with self.characters.db.engine.connect() as conn:
            adult = conn.execute(sa.select(characters_table.c.chat_adult).where(characters_table.c.id == character_id)).scalar()
        return Surface.CHAT if adult and account.can("adult_prompts") and account.adult_confirmed else Surface.CHAT_SFW

    def set_adult(self, account: Account, character_id: str, enabled: bool) -> dict[str, Any]:
        """The creator's switch: 18+ chat with this character for members who confirmed their age (guests stay SFW)."""
        try:
            self.characters.mine(account, character_id)  # the owner only
        except CharacterError:
            raise ChatError(f"No character {character_id!r} among yours: only its creator can allow 18+ chat with it.") from None
        if enabled and not (account.can("adult_prompts") and account.adult_confirmed):
            raise ChatError("Only members who confirmed they are 18 or older can allow 18+ chat with their characters.")
        with self.characters.db.begin() as conn:
            conn.execute(characters_table.update().where(characters_table.c.id == character_id).values(chat_adult=bool(enabled)))
        return {"character_id": character_id, "chat_adult": bool(enabled)}

    # -- conversations ------------------------------------------------------------------------------------
    def open(self, account: Account, character_id: str, model: str = "", persona: int | None = None,
             seed: int | None = None) -> dict[str, Any]:
        """Start a conversation: the greeting is its first message, and one of the character's opening messages
        (picked at random with the conversation's seed, recorded) is offered as your first message."""
        character = self.character(account, character_id)
        entry = self._model(character, model)
        persona = self._persona(character.profile, persona)
        seed = secrets.randbelow(2**31) if seed is None or seed == "" else int(seed)
        if not 0 <= seed < SEED_LIMIT:
            raise ChatError(f"A seed is a whole number from 0 to {SEED_LIMIT - 1}.")
        openers = character.profile.get("alternate_greetings") or []
        opener = random.Random(seed).randrange(len(openers)) if openers else None
        greeting = character.profile["fields"].get("first_mes", "")  # kept as written: {{user}} follows the persona in use
        conversation_id = self.store.create(
            account_id=account.id, character_id=character.id, title=f"Chat with {character.name}"[:TITLE_MAX], model=entry.id,
            persona=persona, seed=seed, opener=opener, challenges=fresh_state(character.profile.get("challenge_modes") or []),
            greeting=greeting)
        return self.get(account, conversation_id)

    def conversations(self, account: Account, character_id: str = "") -> list[dict[str, Any]]:
        return [{"id": r.id, "character_id": r.character_id, "title": r.title, "model": r.model, "turns": r.turns,
                 "updated_at": r.updated_at} for r in self.store.listing(account.id, character_id)]

    def get(self, account: Account, conversation_id: str) -> dict[str, Any]:
        """The conversation as the visitor sees it: the newest messages, the persona, model and challenge bars, the
        opener offered (until the first message is sent) and the prices. Never the character's hidden instructions."""
        row = self.store.row(account.id, conversation_id)
        character = self.character(account, row.character_id)
        profile = character.profile
        openers = profile.get("alternate_greetings") or []
        challenges = profile.get("challenge_modes") or []
        user = self._user_name(profile, row.persona)
        entry = self.catalogue.chat_entry(row.model)
        state = list(row.challenges or [])
        try:
            picture_price, picture_note = self.pictures.quote(account, character).total, ""
        except ChatError as exc:  # e.g. no edit model here for a character without a figure: the chat stays readable
            picture_price, picture_note = None, str(exc)
        return {
            "id": row.id, "title": row.title, "character": {"id": character.id, "name": character.name,
                                                            "image": str(character.image) if character.image else None},
            "model": {"id": entry.id, "name": entry.name, "preview": self.catalogue.is_preview(entry)},
            "models": self.models(character),
            "persona": row.persona, "personas": [p.get("name", "") for p in profile.get("persona_cards") or []],
            "seed": row.seed, "turns": row.turns,
            "opener": macros(openers[row.opener], character.name, user) if row.opener is not None and row.turns == 0 else None,
            "challenges": [{"goal": c.get("goal", ""), "hint": c.get("hint", ""), "progress": s.get("progress", 0),
                            "unlocked": s.get("unlocked_turn") is not None,
                            "unlocked_behaviour": c.get("target", "") if s.get("unlocked_turn") is not None else None}
                           for c, s in zip(challenges, state)],
            "judge": self._judge_label(entry),
            "messages": [dict(m.as_dict(), content=macros(m.content, character.name, user)) if m.idx == 0 else m.as_dict()
                         for m in self.store.messages(row.id)],
            "price": {"message": self.catalogue.price(entry, Task.CHAT, "message").total, "picture": picture_price},
            "picture_note": picture_note,
        }

    def rename(self, account: Account, conversation_id: str, title: str) -> dict[str, Any]:
        title = (title or "").strip()
        if not title or len(title) > TITLE_MAX:
            raise ChatError(f"A conversation's name is 1 to {TITLE_MAX} characters.")
        self.store.update(self.store.row(account.id, conversation_id).id, title=title)
        return self.get(account, conversation_id)

    def clear(self, account: Account, conversation_id: str) -> dict[str, Any]:
        """Start the conversation again: the greeting stays, every other message and all challenge progress go."""
        row = self.store.row(account.id, conversation_id)
        character = self.character(account, row.character_id)
        self.store.clear(row.id, fresh_state(character.profile.get("challenge_modes") or []))
        return self.get(account, conversation_id)

    def delete(self, account: Account, conversation_id: str) -> dict[str, Any]:
        self.store.delete(self.store.row(account.id, conversation_id).id)
        return {"deleted": conversation_id}

    def choose(self, account: Account, conversation_id: str, model: str | None = None, persona: int | None = -1) -> dict[str, Any]:
        """Pick the chat model (one the character names) and the persona card (None: none) for the next turns."""
        row = self.store.row(account.id, conversation_id)
        character = self.character(account, row.character_id)
        values: dict[str, Any] = {}
        if model:
            values["model"] = self._model(character, model).id
        if persona != -1:
            values["persona"] = self._persona(character.profile, persona)
        if values:
            self.store.update(row.id, **values)
        return self.get(account, conversation_id)

    # -- a turn ---------------------------------------------------------------------------------------------
    def quote(self, account: Account, conversation_id: str, message: str = "") -> dict[str, Any]:
        """What sending `message` costs: a reply at the chat model's price per message, or a picture at its price."""
        row = self.store.row(account.id, conversation_id)
        if wants_picture(message):
            quote = self.pictures.quote(account, self.character(account, row.character_id))
            return {"kind": "picture", "price": quote.total, "text": quote.text()}
        quote = self.catalogue.price(self.catalogue.chat_entry(row.model), Task.CHAT, "message")
        return {"kind": "reply", "price": quote.total, "text": quote.text()}

    def send(self, account: Account, conversation_id: str, message: str, idempotency_key: str | None = None,
             on_text: Callable[[str], None] | None = None, on_step: StepCallback | None = None) -> dict[str, Any]:
        """Send a message and get the character's reply (streamed through `on_text`); a message asking for a picture
        gets one instead. The message passes the prompt policy before anything is charged; a withheld reply is
        replaced by a notice and refunded."""
        row = self.store.row(account.id, conversation_id)
        character = self.character(account, row.character_id)
        message = checked_message(message)
        surface = self.surface(account, character.id)
        if wants_picture(message):
            return self.picture(account, conversation_id, message, idempotency_key, on_step)
        entry = self._model(character, row.model)
        profile = character.profile
        persona = self._persona_card(profile, row.persona)
        challenges = profile.get("challenge_modes") or []
        state = [dict(s) for s in row.challenges or fresh_state(challenges)]
        unlocked = [c.get("target", "") for c, s in zip(challenges, state) if s.get("unlocked_turn") is not None]
        system = hidden_instructions(character.name, profile, persona, unlocked)
        user = self._user_name(profile, row.persona)
        history = [v for m in self.store.messages(row.id, HISTORY_READ)
                   if (v := visible_text(m.role, macros(m.content, character.name, user) if m.idx == 0 else m.content))]
        assert entry.chat is not None
        messages, left_out = bounded(system, history, message, self.catalogue.chat_window(entry), entry.chat.max_new_tokens,
                                     lambda texts: self.catalogue.count_tokens(entry, texts))
        secret = [profile["fields"].get("system_prompt", ""), profile["fields"].get("post_history_instructions", ""), GUARD,
                  *(c.get("target", "") for c, s in zip(challenges, state) if s.get("unlocked_turn") is None)]

        def no_leak(result) -> None:
            if any(leaks(text, [s for s in secret if s]) for text in result.texts):
                raise SafetyBlocked("it repeated the character's hidden instructions")

        turn = row.turns + 1
        seed = (row.seed + turn) % SEED_LIMIT
        request = GenerationRequest(prompt=message, messages=tuple(messages), max_new_tokens=entry.chat.max_new_tokens,
                                    temperature=entry.chat.temperature, seed=seed, steps=1, guidance=0.0,
                                    stream=self._guarded(on_text, account, surface, [t for t in secret if t]))
        stages = [Stage("reply", entry, Task.CHAT, request, tier="message")]
        model_judge = self._model_judges(entry) and any(s.get("unlocked_turn") is None for s in state)
        if model_judge:  # the chat model judges the turn first: an unpriced inner stage of the same paid turn
            verdict_request = GenerationRequest(prompt=message, messages=judge_messages(message, challenges), seed=seed,
                                                max_new_tokens=min(JUDGE_TOKENS, entry.chat.max_new_tokens), temperature=0.0,
                                                steps=1, guidance=0.0)
            stages.insert(0, Stage("judge", entry, Task.CHAT, verdict_request, tier="message", priced=False))
        run = PaidRun(
            stages=tuple(stages), surface=surface,
            replay={"conversation": row.id, "turn": turn, "message": message, "model": entry.id},
            prompts=(PromptCheck(message),), annotate=no_leak,
            record={"conversation_id": row.id, "character_id": character.id, "left_out_turns": left_out},
        )
        try:
            output = self.runner.run(account, run, idempotency_key, on_step)
        except SafetyBlocked as exc:
            self.store.append(row.id, [{"role": "user", "content": message},
                                       {"role": "notice", "content": WITHHELD.format(why=exc.reason)}])
            return dict(self.get(account, conversation_id), reply=None, withheld=exc.reason, charged=0)
        reply = str(output.parameters.get("reply") or "")
        judge, moves = RULES, None
        if model_judge:
            answer = next((st.get("reply", "") for st in output.parameters.get("stages") or [] if st.get("stage") == "judge"), "")
            moves = read_moves(answer, len(challenges))
            judge = MODEL if moves is not None else f"{RULES} (the model's verdict was unreadable)"
        verdicts = apply_moves(moves, state, turn) if moves is not None else judge_turn(message, challenges, state, turn)
        user_meta = {"judge": judge, "verdicts": [v.__dict__ for v in verdicts]}
        if not self.store.has_generation(row.id, output.request_id):  # a replayed key is stored once
            notices = [{"role": "notice", "content": f"Challenge complete: “{challenges[v.index].get('goal', '')}”. Unlocked: "
                        f"{challenges[v.index].get('target', '')}", "meta": {"unlocked": v.index}} for v in verdicts if v.unlocked]
            self.store.append(row.id, [
                {"role": "user", "content": message, "meta": user_meta},
                {"role": "assistant", "content": reply, "generation_id": output.request_id,
                 "meta": {"left_out_turns": left_out, "preview": output.preview, "model": entry.id}},
                *notices], turn=True, challenges=state)
        return dict(self.get(account, conversation_id), reply=reply, charged=output.charged, preview=output.preview,
                    request_id=output.request_id, left_out_turns=left_out)

    def picture(self, account: Account, conversation_id: str, asked: str = "", idempotency_key: str | None = None,
                on_step: StepCallback | None = None) -> dict[str, Any]:
        """The instant-picture button (or a message asking for one): an image of the character from the conversation's
        context, through the runner with the figure's canonical reference and style register (or the main image)."""
        row = self.store.row(account.id, conversation_id)
        character = self.character(account, row.character_id)
        recent = [v for m in self.store.messages(row.id, 12) if (v := visible_text(m.role, m.content))]
        output, scene = self.pictures.make(account, character, recent, asked, self.surface(account, character.id),
                                           seed=(row.seed + row.turns + 1) % SEED_LIMIT, idempotency_key=idempotency_key,
                                           on_step=on_step, record={"conversation_id": row.id})
        if not self.store.has_generation(row.id, output.request_id):
            stored = [{"role": "image", "content": scene, "generation_id": output.request_id,
                       "file": self.pictures.relative(output.files[0]), "meta": {"preview": output.preview}}]
            challenges = character.profile.get("challenge_modes") or []
            state = [dict(s) for s in row.challenges or fresh_state(challenges)]
            if asked:
                verdicts = judge_turn(asked, challenges, state, row.turns + 1)
                stored.insert(0, {"role": "user", "content": asked, "meta": {"judge": RULES, "verdicts": [v.__dict__ for v in verdicts]}})
            self.store.append(row.id, stored, turn=bool(asked), challenges=state)
        return dict(self.get(account, conversation_id), picture=str(output.files[0]), charged=output.charged,
                    preview=output.preview, request_id=output.request_id, scene=scene)

    # -- helpers --------------------------------------------------------------------------------------------
    def _guarded(self, on_text: Callable[[str], None] | None, account: Account, surface: Surface, secret: list[str]):
        """The stream as the visitor sees it: the reply so far is checked as it grows (the prompt policy, the hidden
        instructions), and shown STREAM_BEHIND characters behind (more than LEAK_WORDS words of ordinary text), so
        that the start of a quote of the hidden instructions is not on screen when it is caught; from the first piece that breaks a rule nothing more is shown, and the runner's check at
        the end withholds the whole reply and refunds it. The caller shows the final reply when the turn ends."""
        if on_text is None:
            return None
        said: list[str] = []
        shown = 0
        stopped = False

        def forward(piece: str) -> None:
            nonlocal stopped, shown
            said.append(piece)
            if stopped:
                return
            text = "".join(said)
            try:
                self.runner.policy.check_text(text, account, surface)
            except PromptRefused:
                stopped = True
                return
            if leaks(text[-600:], secret):  # a leak shows in the newest words
                stopped = True
                return
            ready = len(text) - STREAM_BEHIND
            if ready > shown:
                on_text(text[shown:ready])
                shown = ready

        return forward

    def _model_judges(self, entry) -> bool:
        """The chat model judges challenge turns when it is a real model; the tiny preview's noise cannot."""
        return not self.catalogue.is_preview(entry)

    def _judge_label(self, entry) -> str:
        if self._model_judges(entry):
            return f"{MODEL} ({entry.name} judges each turn with a structured prompt; {STEP} % per turn toward a goal)"
        return f"{RULES} (offline, deterministic: {STEP} % per turn that uses a word of the goal or hint)"

    def _model(self, character, model: str):
        offered = self.models(character)
        if not model:
            return self.catalogue.chat_entry(offered[0]["id"])
        entry = self.catalogue.chat_entry(model)
        if entry.id not in [m["id"] for m in offered]:
            raise ChatError(f"{character.name} chats with {', '.join(m['name'] for m in offered)}; pick one of those.")
        return entry

    @staticmethod
    def _persona(profile: dict[str, Any], persona: int | str | None) -> int | None:
        if persona is None or persona == "":
            return None
        cards = profile.get("persona_cards") or []
        try:
            index = int(persona)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < len(cards):
            raise ChatError(f"Pick one of the character's {len(cards)} persona card(s), or none." if cards
                            else "This character has no persona cards.")
        return index

    @staticmethod
    def _persona_card(profile: dict[str, Any], index: int | None) -> Persona | None:
        cards = profile.get("persona_cards") or []
        if index is None or not 0 <= index < len(cards):
            return None
        return Persona(cards[index].get("name", ""), cards[index].get("description", ""))

    def _user_name(self, profile: dict[str, Any], persona: int | None) -> str:
        card = self._persona_card(profile, persona)
        return card.name if card and card.name else "you"
