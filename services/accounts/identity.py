"""Who is asking: signed-in Hugging Face users, anonymous visitors with server-signed tokens, QA sessions.

A visitor token is `<account id>.<HMAC-SHA256(server secret, account id)>`. The browser keeps it (gr.
BrowserState) and API callers pass it to every endpoint; an edited or foreign token fails verification
and is treated as a new visitor by /session_start and refused everywhere else. New-visitor grants are
limited per client IP (stored as a keyed hash, never in clear) so clearing storage does not farm credits.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from ..errors import UserError
from .db import Database
from .ledger import Ledger
from .plans import Plans
from .network import Throttle, grant_key
from .tables import accounts, ip_grants, kv

TOKEN_CONTEXT = b"playground-session-v1:"


class InvalidSession(UserError, PermissionError):
    """The token is missing, forged or expired; the message says what to do."""


@dataclass(frozen=True)
class HFUser:
    """A signed-in Hugging Face user, from gr.OAuthProfile (`sub` is the stable user id)."""

    id: str
    username: str
    name: str = ""


@dataclass(frozen=True)
class Account:
    id: str
    kind: str  # visitor | hf | qa
    tier: str
    tier_label: str
    display_name: str
    balance: int
    unlimited: bool
    unlocks: tuple[str, ...]
    age_confirmed: bool = False  # the member confirmed being 18 or older (recorded on the account)

    def can(self, feature: str) -> bool:
        return feature in self.unlocks

    @property
    def adult_confirmed(self) -> bool:
        """18+ content: the plan unlocks it and the person confirmed their age (QA sessions are internal testers)."""
        return self.can("adult_prompts") and (self.age_confirmed or self.kind == "qa")

    def balance_text(self) -> str:
        return "unlimited credits" if self.unlimited else f"{self.balance} credit{'s' if self.balance != 1 else ''}"

    def as_dict(self) -> dict:
        return {
            "account": self.id,
            "kind": self.kind,
            "tier": self.tier,
            "tier_label": self.tier_label,
            "name": self.display_name,
            "balance": self.balance,
            "unlimited": self.unlimited,
            "unlocks": list(self.unlocks),
            "age_confirmed": self.age_confirmed,
        }


@dataclass(frozen=True)
class Session:
    account: Account
    token: str
    new: bool = False
    granted: int = 0
    messages: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return {"token": self.token, **self.account.as_dict(), "new": self.new, "granted": self.granted, "message": " ".join(self.messages)}


def server_secret(db: Database, configured: str | None) -> bytes:
    """PLAYGROUND_SECRET when set; otherwise one random secret stored in the database on first start,
    so tokens survive restarts and every instance sharing the database agrees on it."""
    if configured:
        return configured.encode()
    with db.begin() as conn:
        db.insert_ignore(conn, kv, {"key": "token_secret", "value": secrets.token_urlsafe(48)})
        return conn.execute(sa.select(kv.c.value).where(kv.c.key == "token_secret")).scalar_one().encode()


ADMIN_SECRET_MIN = 32  # characters: an admin key opens unlimited credits and moderation, so it must resist guessing


def check_admin_secret(secret: str | None) -> None:
    """Refuse a weak admin secret at start-up, saying why and how to make a strong one."""
    if secret is not None and len(secret) < ADMIN_SECRET_MIN:
        raise ValueError(
            f"PLAYGROUND_ADMIN_SECRET is {len(secret)} characters long; QA sessions (unlimited credits, moderation) need "
            f"at least {ADMIN_SECRET_MIN}. Make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\" "
            "or leave it unset to keep QA sessions off.")


class Identity:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        plans: Plans,
        secret: bytes,
        *,
        admin_secret: str | None = None,
        grants_per_ip: int | None = None,
        clock=time.time,
    ):
        self.db = db
        self.ledger = ledger
        self.plans = plans
        self._secret = secret
        check_admin_secret(admin_secret or None)
        self._admin_secret = admin_secret or None
        self.grants_per_ip = plans.visitor_grants.per_ip if grants_per_ip is None else grants_per_ip
        self.grant_window_s = plans.visitor_grants.window_hours * 3600
        self.clock = clock
        self.admin_throttle = Throttle(free=3)  # wrong admin keys, per client network: 3 typos, then slower and slower

    @property
    def admin_enabled(self) -> bool:
        return self._admin_secret is not None

    def derive(self, purpose: str) -> str:
        """A stable key for another purpose (e.g. encrypting browser storage), derived from the secret."""
        return hmac.new(self._secret, b"derive:" + purpose.encode(), hashlib.sha256).hexdigest()

    # -- tokens ----------------------------------------------------------------------------------------
    def sign(self, account_id: str) -> str:
        digest = hmac.new(self._secret, TOKEN_CONTEXT + account_id.encode(), hashlib.sha256).digest()
        return f"{account_id}.{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"

    def verify(self, token: str | None) -> str | None:
        """The account id a token was issued for, or None when it is missing, malformed or forged."""
        if not token or not isinstance(token, str) or "." not in token or len(token) > 200:
            return None
        account_id, _, _sig = token.rpartition(".")
        expected = self.sign(account_id).encode()
        if not account_id or not hmac.compare_digest(expected, token.encode("utf-8", "replace")):
            return None
        return account_id

    def _ip_hash(self, ip: str) -> str:
        """Grants count per IPv4 address and per IPv6 /64, stored as a keyed hash (never the address in clear)."""
        return hmac.new(self._secret, b"ip:" + grant_key(ip).encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:64]

    # -- accounts --------------------------------------------------------------------------------------
    def _account(self, conn: sa.Connection, account_id: str) -> Account | None:
        row = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).first()
        if row is None:
            return None
        tier = self.plans.tier(row.tier)
        return Account(row.id, row.kind, row.tier, tier.label, row.display_name, row.balance, tier.unlimited, tuple(tier.unlocks),
                       row.age_confirmed_at is not None)

    def confirm_age(self, account: Account, confirm: bool) -> Account:
        """Record (or withdraw) the member's confirmation that they are 18 or older."""
        if not account.can("adult_prompts"):
            raise InvalidSession("Age confirmation is for members (18+ prompts are a member feature): sign in with Hugging Face.")
        with self.db.begin() as conn:
            conn.execute(sa.update(accounts).where(accounts.c.id == account.id).values(age_confirmed_at=self.clock() if confirm else None))
        return self.account(account.id)

    def account(self, account_id: str) -> Account:
        with self.db.engine.connect() as conn:
            account = self._account(conn, account_id)
        if account is None:
            raise InvalidSession("That session no longer exists; reload the page or call /session_start again.")
        return account

    def _create(self, conn: sa.Connection, account_id: str, kind: str, tier: str, name: str) -> bool:
        return bool(
            self.db.insert_ignore(
                conn,
                accounts,
                {"id": account_id, "kind": kind, "tier": tier, "display_name": name, "balance": 0, "created_at": self.clock()},
            )
        )

    def _take_ip_grant(self, conn: sa.Connection, ip: str) -> bool:
        """Count one starting grant against this IP's window; False when the window's limit is used up."""
        if self.grants_per_ip <= 0:
            return False
        if not ip:
            return True
        key, now = self._ip_hash(ip), self.clock()
        if self.db.insert_ignore(conn, ip_grants, {"ip_hash": key, "window_start": now, "count": 1}):
            return True
        # Atomic conditional updates: start a new window when the old one expired, else count within it.
        restarted = conn.execute(
            sa.update(ip_grants)
            .where(ip_grants.c.ip_hash == key, ip_grants.c.window_start < now - self.grant_window_s)
            .values(window_start=now, count=1)
        ).rowcount
        if restarted:
            return True
        counted = conn.execute(
            sa.update(ip_grants)
            .where(ip_grants.c.ip_hash == key, ip_grants.c.count < self.grants_per_ip)
            .values(count=ip_grants.c.count + 1)
        ).rowcount
        return bool(counted)

    # -- sessions --------------------------------------------------------------------------------------
    def start(self, token: str | None = None, ip: str = "", hf_user: HFUser | None = None, admin_key: str = "") -> Session:
        """Resume the session a valid token names, or start one: QA with the admin key, the HF account
        when signed in (moving any visitor credits over), else a new visitor (granted within the IP limit)."""
        if admin_key:
            return self._start_qa(admin_key, ip)
        known = self.verify(token)
        if hf_user is not None:
            return self._start_hf(hf_user, known)
        if known is not None:
            with self.db.engine.connect() as conn:
                account = self._account(conn, known)
            if account is not None and self._usable(account):
                return Session(account, self.sign(account.id))
        return self._start_visitor(ip, forged=bool(token) and known is None)

    def _usable(self, account: Account) -> bool:
        return account.kind != "qa" or self.admin_enabled

    def _start_qa(self, admin_key: str, ip: str = "") -> Session:
        key = grant_key(ip)
        wait = self.admin_throttle.wait_s(key)
        if wait > 0:
            raise InvalidSession(f"Too many wrong admin keys from your network; try again in {wait:.0f} s.")
        if not self.admin_enabled or not hmac.compare_digest(str(admin_key).encode("utf-8", "replace"), self._admin_secret.encode()):  # type: ignore[union-attr]
            self.admin_throttle.failed(key)
            raise InvalidSession("That admin key is not valid (QA mode needs PLAYGROUND_ADMIN_SECRET on the server).")
        self.admin_throttle.succeeded(key)
        account_id = f"qa-{secrets.token_urlsafe(12)}"
        with self.db.begin() as conn:
            self._create(conn, account_id, "qa", "qa", "QA")
            account = self._account(conn, account_id)
        return Session(account, self.sign(account_id), new=True, messages=("QA mode: unlimited credits and the review view.",))  # type: ignore[arg-type]

    def _start_visitor(self, ip: str, forged: bool) -> Session:
        account_id = f"v-{secrets.token_urlsafe(16)}"
        tier = self.plans.tier("guest")
        messages: list[str] = []
        if forged:
            messages.append("Your saved session could not be verified, so a new one was started.")
        with self.db.begin() as conn:
            self._create(conn, account_id, "visitor", "guest", "Guest")
            granted = 0
            if tier.starting_grant and self._take_ip_grant(conn, ip):
                self.ledger.grant(conn, account_id, tier.starting_grant, f"grant:{account_id}", "starting grant (guest)")
                granted = tier.starting_grant
            elif tier.starting_grant:
                messages.append(
                    "No starting credits this time: this network already received its new-visitor grants today. "
                    "Sign in with Hugging Face for member credits."
                )
            account = self._account(conn, account_id)
        return Session(account, self.sign(account_id), new=True, granted=granted, messages=tuple(messages))  # type: ignore[arg-type]

    def _start_hf(self, user: HFUser, previous: str | None) -> Session:
        account_id = f"hf-{user.id}"
        tier = self.plans.tier("member")
        messages: list[str] = []
        granted = 0
        with self.db.begin() as conn:
            created = self._create(conn, account_id, "hf", "member", user.username or user.name or "member")
            if created and tier.starting_grant:
                self.ledger.grant(conn, account_id, tier.starting_grant, f"grant:{account_id}", "starting grant (member)")
                granted = tier.starting_grant
            if previous and previous.startswith("v-"):
                # Credits left on this browser's visitor session move to the signed-in account once.
                left = conn.execute(sa.select(accounts.c.balance).where(accounts.c.id == previous)).scalar()
                if left:
                    self.ledger.transfer(conn, previous, account_id, left, f"transfer:{previous}", f"visitor credits moved to {account_id}")
                    messages.append(f"{left} credits from your visitor session were added.")
            account = self._account(conn, account_id)
        return Session(account, self.sign(account_id), new=created, granted=granted, messages=tuple(messages))  # type: ignore[arg-type]

    def resolve(self, token: str | None, hf_user: HFUser | None = None) -> Account:
        """The account for a paying call: the signed-in user, else a valid token's account."""
        if hf_user is not None:
            account = self.account(f"hf-{hf_user.id}") if self._exists(f"hf-{hf_user.id}") else self._start_hf(hf_user, None).account
            return account
        account_id = self.verify(token)
        if account_id is None:
            raise InvalidSession(
                "Your session token is missing or not valid. Reload the page, or call /session_start and pass its token."
            )
        account = self.account(account_id)
        if not self._usable(account):
            raise InvalidSession("QA mode is off on this server; reload the page to start a normal session.")
        return account

    def _exists(self, account_id: str) -> bool:
        with self.db.engine.connect() as conn:
            return conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id)).first() is not None
