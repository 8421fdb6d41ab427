"""The credits ledger: every change to a balance is one row, written in the same transaction.

Balances never go below zero: a debit is a single conditional UPDATE (`balance >= amount`), never a
read followed by a write, so concurrent requests cannot double-spend on SQLite or PostgreSQL. The sum of
an account's rows always equals its balance.

Row kinds and signs: grant (+), reserve (-price), capture (0; records what the reservation became),
refund (+), adjustment (+/-), transfer (- on the source, + on the destination).

Credits are conserved: transfers under one request id add up to zero, so the sum of every balance (the platform
account's included) plus what captured generations kept (their reserves less their refunds) equals every grant
and adjustment ever made. A sale's platform part is a row of its own on the PLATFORM account, never a remainder
that vanishes.
"""
from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from ..errors import UserError
from .db import Database, row_dict
from .tables import accounts, ledger

KINDS = ("grant", "reserve", "capture", "refund", "adjustment", "transfer")
# The platform's own account: it receives the platform's part of every sale. Kind "platform" (no session can be
# started for it: tokens name visitor, hf- and qa- accounts signed by the server); tier "guest" so that any code
# that reads an account's tier finds a valid one.
PLATFORM = "platform"


class InsufficientCredits(UserError):
    def __init__(self, price: int, balance: int, hint: str = ""):
        self.price, self.balance = price, balance
        hint = hint or "Lower the batch size or resolution, or pick a cheaper model"
        super().__init__(
            f"This costs {price} credit{'s' if price != 1 else ''} but your balance is {balance}. "
            f"{hint}; nothing was charged. Every charge and refund is in the Credits tab's ledger."
        )


class UnknownAccount(LookupError):
    pass


class Ledger:
    def __init__(self, db: Database):
        self.db = db

    # -- writes: each takes the caller's connection so they compose into one transaction --------------
    def _change(self, conn: sa.Connection, account_id: str, kind: str, amount: int, request_id: str, note: str = "", floor: bool = True) -> int | None:
        """Add `amount` (may be negative) to the balance and write the row; None if it would go below zero."""
        assert kind in KINDS, kind
        stmt = sa.update(accounts).where(accounts.c.id == account_id)
        if floor and amount < 0:
            stmt = stmt.where(accounts.c.balance >= -amount)
        row = conn.execute(stmt.values(balance=accounts.c.balance + amount).returning(accounts.c.balance)).first()
        if row is None:
            return None
        conn.execute(
            ledger.insert().values(
                account_id=account_id,
                kind=kind,
                amount=amount,
                balance_after=row[0],
                request_id=request_id,
                note=note[:300],
                created_at=time.time(),
            )
        )
        return row[0]

    def _require(self, value: int | None, conn: sa.Connection, account_id: str, price: int) -> int:
        if value is not None:
            return value
        balance = conn.execute(sa.select(accounts.c.balance).where(accounts.c.id == account_id)).scalar()
        if balance is None:
            raise UnknownAccount(account_id)
        raise InsufficientCredits(price, balance)

    def grant(self, conn: sa.Connection, account_id: str, amount: int, request_id: str, note: str = "") -> int:
        return self._require(self._change(conn, account_id, "grant", amount, request_id, note), conn, account_id, 0)

    def reserve(self, conn: sa.Connection, account_id: str, amount: int, request_id: str, note: str = "") -> int:
        """Take `amount` now; raises InsufficientCredits (changing nothing) when the balance is short."""
        return self._require(self._change(conn, account_id, "reserve", -amount, request_id, note), conn, account_id, amount)

    def capture(self, conn: sa.Connection, account_id: str, request_id: str, note: str) -> int:
        return self._require(self._change(conn, account_id, "capture", 0, request_id, note), conn, account_id, 0)

    def refund(self, conn: sa.Connection, account_id: str, amount: int, request_id: str, note: str) -> int:
        return self._require(self._change(conn, account_id, "refund", amount, request_id, note), conn, account_id, 0)

    def adjust(self, conn: sa.Connection, account_id: str, amount: int, request_id: str, note: str) -> int:
        return self._require(self._change(conn, account_id, "adjustment", amount, request_id, note), conn, account_id, -amount)

    def transfer(self, conn: sa.Connection, source: str, destination: str, amount: int, request_id: str, note: str = "") -> int:
        self._require(self._change(conn, source, "transfer", -amount, request_id, note), conn, source, amount)
        return self._require(self._change(conn, destination, "transfer", amount, request_id, note), conn, destination, 0)

    def platform(self, conn: sa.Connection) -> str:
        """The platform account's id, creating its row (balance 0) the first time; safe under concurrent callers."""
        self.db.insert_ignore(conn, accounts, {"id": PLATFORM, "kind": "platform", "tier": "guest",
                                               "display_name": "Platform", "balance": 0, "created_at": time.time()})
        return PLATFORM

    def sale(self, conn: sa.Connection, buyer: str, seller: str, price: int, share: int, request_id: str, note: str = "") -> int:
        """Transfer rows under one request id that add up to zero: the buyer pays `price`, the seller receives
        `share`, the platform account receives `price - share`. Raises InsufficientCredits, changing nothing (the
        caller's transaction rolls back), when the buyer is short. Returns the buyer's balance after."""
        assert isinstance(price, int) and isinstance(share, int) and 0 <= share <= price, (share, price)
        balance = self._require(self._change(conn, buyer, "transfer", -price, request_id, note), conn, buyer, price)
        if share:
            self._require(self._change(conn, seller, "transfer", share, request_id, note), conn, seller, 0)
        if price - share:
            platform = self.platform(conn)
            self._require(self._change(conn, platform, "transfer", price - share, request_id, note), conn, platform, 0)
        return balance

    # -- reads -----------------------------------------------------------------------------------------
    def balance(self, account_id: str) -> int:
        with self.db.engine.connect() as conn:
            value = conn.execute(sa.select(accounts.c.balance).where(accounts.c.id == account_id)).scalar()
        if value is None:
            raise UnknownAccount(account_id)
        return value

    def total(self, account_id: str) -> int:
        """The sum of the account's ledger rows (always equal to its balance)."""
        with self.db.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0)).where(ledger.c.account_id == account_id)).scalar())

    def entries(self, account_id: str, limit: int = 100, request_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(ledger).where(ledger.c.account_id == account_id)
        if request_id is not None:
            query = query.where(ledger.c.request_id == request_id)
        query = query.order_by(ledger.c.id.desc()).limit(limit)
        with self.db.engine.connect() as conn:
            return [row_dict(r) for r in conn.execute(query)]
