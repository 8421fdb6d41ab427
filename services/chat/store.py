"""The chat tables' reads and writes: a conversation row and its messages, read a bounded page at a time."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..accounts.db import Database
from ..accounts.tables import chat_messages, conversations
from ..errors import UserError

HISTORY_READ = 400  # the most messages read back for one turn's context (the window bounds what is sent)
PAGE = 200  # the most messages a conversation view returns (the newest)
TITLE_MAX = 120


class ChatError(UserError, ValueError):
    """A chat request the visitor can change: an unknown conversation, a character they can no longer open, ..."""


@dataclass(frozen=True)
class Message:
    idx: int
    role: str  # assistant | user | notice | image
    content: str
    generation_id: str | None
    file: str | None
    meta: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {"idx": self.idx, "role": self.role, "content": self.content, "generation_id": self.generation_id,
                "file": self.file, "meta": self.meta or {}}


def _message(row) -> Message:
    return Message(row.idx, row.role, row.content, row.generation_id, row.file, dict(row.meta) if row.meta else None)


class ChatStore:
    def __init__(self, db: Database):
        self.db = db

    def create(self, *, account_id: str, character_id: str, title: str, model: str, persona: int | None, seed: int,
               opener: int | None, challenges: list[dict[str, Any]], greeting: str) -> str:
        conversation_id = secrets.token_hex(8)
        now = time.time()
        with self.db.begin() as conn:
            conn.execute(conversations.insert().values(
                id=conversation_id, account_id=account_id, character_id=character_id, title=title[:TITLE_MAX], model=model,
                persona=persona, seed=seed, opener=opener, challenges=challenges, turns=0, created_at=now, updated_at=now))
            conn.execute(chat_messages.insert().values(conversation_id=conversation_id, idx=0, role="assistant",
                                                       content=greeting, created_at=now))
        return conversation_id

    def row(self, account_id: str, conversation_id: str):
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(conversations).where(conversations.c.id == str(conversation_id or ""),
                                                              conversations.c.account_id == account_id)).first()
        if row is None:
            raise ChatError(f"No conversation {conversation_id!r} among yours.")
        return row

    def listing(self, account_id: str, character_id: str = "", limit: int = 100) -> list:
        """The visitor's conversations, newest first: their rows only (no message is read)."""
        query = sa.select(conversations).where(conversations.c.account_id == account_id)
        if character_id:
            query = query.where(conversations.c.character_id == character_id)
        with self.db.engine.connect() as conn:
            return conn.execute(query.order_by(conversations.c.updated_at.desc(), conversations.c.id).limit(limit)).all()

    def messages(self, conversation_id: str, limit: int = PAGE) -> list[Message]:
        """The newest `limit` messages, oldest first."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(chat_messages).where(chat_messages.c.conversation_id == conversation_id)
                                .order_by(chat_messages.c.idx.desc()).limit(limit)).all()
        return [_message(r) for r in reversed(rows)]

    def has_generation(self, conversation_id: str, generation_id: str) -> bool:
        with self.db.engine.connect() as conn:
            return conn.execute(sa.select(chat_messages.c.id).where(chat_messages.c.conversation_id == conversation_id,
                                                                    chat_messages.c.generation_id == generation_id)).first() is not None

    def append(self, conversation_id: str, messages: list[dict[str, Any]], *, turn: bool = False,
               challenges: list[dict[str, Any]] | None = None) -> None:
        """Add messages after the last one, and update the conversation (a visitor's turn, challenge progress), in one
        transaction: a turn is stored whole or not at all."""
        now = time.time()
        with self.db.begin() as conn:
            last = conn.execute(sa.select(sa.func.max(chat_messages.c.idx)).where(
                chat_messages.c.conversation_id == conversation_id)).scalar()
            start = -1 if last is None else int(last)
            # every row names every column: an executemany takes its columns from the first row
            conn.execute(chat_messages.insert(), [{"generation_id": None, "file": None, "meta": None, **m,
                                                   "conversation_id": conversation_id, "idx": start + 1 + i, "created_at": now}
                                                  for i, m in enumerate(messages)])
            values: dict[str, Any] = {"updated_at": now}
            if turn:
                values["turns"] = conversations.c.turns + 1
            if challenges is not None:
                values["challenges"] = challenges
            conn.execute(conversations.update().where(conversations.c.id == conversation_id).values(**values))

    def update(self, conversation_id: str, **values: Any) -> None:
        with self.db.begin() as conn:
            conn.execute(conversations.update().where(conversations.c.id == conversation_id).values(updated_at=time.time(), **values))

    def clear(self, conversation_id: str, challenges: list[dict[str, Any]]) -> None:
        """Every message but the greeting goes; challenge progress starts again."""
        with self.db.begin() as conn:
            conn.execute(chat_messages.delete().where(chat_messages.c.conversation_id == conversation_id, chat_messages.c.idx > 0))
            conn.execute(conversations.update().where(conversations.c.id == conversation_id).values(
                turns=0, challenges=challenges, updated_at=time.time()))

    def delete(self, conversation_id: str) -> None:
        with self.db.begin() as conn:
            conn.execute(chat_messages.delete().where(chat_messages.c.conversation_id == conversation_id))
            conn.execute(conversations.delete().where(conversations.c.id == conversation_id))
