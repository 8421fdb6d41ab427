"""Who is asking, for every event: the session token in browser storage, the signed-in HF user, the IP.

`build` adds the account bar (shown on every tab), the optional Hugging Face login button, the page-load
handler that starts or resumes the session, and the account API: /session_start, /balance, /quote,
/ledger. Paying events take the token component as an input and the bar as an output.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from services.container import Services
from services.accounts.identity import Account, HFUser, InvalidSession, Session

from .api import api, required
from .errors import user_errors
from .text import md


@dataclass
class SessionUI:
    token: gr.BrowserState
    bar: gr.Markdown
    loaded: object  # the page-load event (session started): chain per-tab refreshes with .then()


def client_ip(services: Services, request: gr.Request | None) -> str:
    """The client's address, as the deployment's proxy trust derives it (services.accounts.network)."""
    if request is None:
        return ""
    peer = request.client.host if request.client else ""
    return services.network.client_address(peer, request.headers.get("x-forwarded-for"))


def hf_user(profile: gr.OAuthProfile | None) -> HFUser | None:
    if profile is None:
        return None
    return HFUser(id=str(profile.get("sub") or profile.get("preferred_username")), username=profile.get("preferred_username", ""), name=profile.get("name", ""))


def bar_text(account: Account, message: str = "") -> str:
    who = f"**{md(account.display_name)}**" if account.kind == "hf" else account.tier_label
    line = f"Session: {who} · {account.tier_label} plan · **{account.balance_text()}**"
    return line + (f"  \n_{message}_" if message else "")


def account_for(services: Services, token: str | None, profile: gr.OAuthProfile | None = None) -> Account:
    return services.identity.resolve(token, hf_user(profile))


def optional_account(services: Services, token: str | None, profile: gr.OAuthProfile | None = None) -> Account | None:
    """The account if the caller has a valid session, else None (for displays, never for paying)."""
    try:
        return account_for(services, token, profile)
    except InvalidSession:
        return None


def stop_button(elem_id: str) -> gr.Button:
    """A Stop button beside a tab's Generate button (wire it with `wire_stop` once the notice exists)."""
    return gr.Button("Stop", variant="stop", elem_id=elem_id, scale=0, min_width=90)


def wire_stop(services: Services, session: "SessionUI", stop: gr.Button, notice) -> None:
    """Stop ends the visitor's running generation at its next step (it is refunded); not queued behind it."""

    def on_stop(token: str, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        stopped = services.cancel(account) if account else 0
        return "Stopping at the next step; it will be refunded." if stopped else "Nothing is running."

    stop.click(on_stop, [session.token], [notice], queue=False, api_visibility="private")


def start_session(services: Services, token: str | None, request: gr.Request | None, profile=None, admin_key: str = "") -> Session:
    ip = client_ip(services, request)
    return services.identity.start(token, ip=ip, hf_user=hf_user(profile), admin_key=admin_key)


def member_how(services: Services) -> str:
    """How a visitor becomes a member in THIS deployment (Hugging Face sign-in exists only on a Space with OAuth)."""
    if services.settings.oauth_enabled:
        return "Sign in with Hugging Face (the button at the top) to become a member"
    if services.identity.admin_enabled:
        return ("Hugging Face sign-in is not available in this deployment (it needs a Space with hf_oauth); here, member "
                "features are open to QA sessions (Credits › QA / admin, with the deployment's admin key)")
    return "Hugging Face sign-in is not available in this deployment (it needs a Space with hf_oauth), so member features are off here"


def page_session(services: Services, token: str, request: gr.Request | None, profile: gr.OAuthProfile | None) -> tuple[str, str]:
    """On page load: (what browser storage keeps, the account bar)."""
    session = start_session(services, token, request, profile)
    # Signed-in users are identified by their OAuth cookie on every event; browser storage keeps only a
    # visitor token, so signing out on a shared computer does not leave the member account reachable.
    keep = session.token if session.account.kind != "hf" else ""
    return keep, bar_text(session.account, " ".join(session.messages))


def build(services: Services, demo: gr.Blocks) -> SessionUI:
    with gr.Row(equal_height=True):
        bar = gr.Markdown("Starting your session…", elem_id="account-bar")
        if services.settings.oauth_enabled:
            gr.LoginButton(scale=0)
    token = gr.BrowserState(
        "", storage_key="playground-session", secret=services.identity.derive("browser-state")
    )

    def on_load(token: str, request: gr.Request, profile: gr.OAuthProfile | None):
        return page_session(services, token, request, profile)

    loaded = demo.load(on_load, [token], [token, bar], api_name="session_load", api_visibility="private")

    @user_errors
    def session_start(token: str = "", admin_key: str = "", request: gr.Request = None, profile: gr.OAuthProfile | None = None) -> dict:
        """Start or resume a session. Returns the token to send to every other endpoint, with the account's balance,
        tier and what the tier unlocks.

        Args:
            token: a token from an earlier call, to resume it ("" or an invalid one starts a new visitor).
            admin_key: the server's admin key, for a QA session (unlimited credits, report review).
        """
        return start_session(services, token, request, profile, admin_key).as_dict()

    @user_errors
    def balance(token: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """The session's balance and tier.

        Args:
            token: your session token from /session_start.
        """
        return account_for(services, token, profile).as_dict()

    @user_errors
    def quote(
        token: str = "",
        model: str = "",
        task: str = "text-to-image",
        aspect_ratio: str = "1:1",
        resolution: str = "1K",
        count: int = 1,
        figures: int = 1,
        profile: gr.OAuthProfile | None = None,
    ) -> dict:
        """The price of a request before running it, with the balance and whether it is affordable.

        Args:
            token: your session token from /session_start.
            model: a model id from /models.
            task: text-to-image, image-to-image, reference, edit, multi-reference, image-to-video or text-to-video.
            aspect_ratio: one of the model's ratios.
            resolution: one of the model's tiers for that ratio.
            count: outputs.
            figures: figures in a group shot (priced per figure).
        """
        account = account_for(services, token, profile)
        required(model=model)
        result = services.catalogue.quote(model, task, aspect_ratio, resolution, int(count), int(figures)).as_dict()
        result.update(balance=account.balance, unlimited=account.unlimited, affordable=account.unlimited or account.balance >= result["total"])
        return result

    @user_errors
    def ledger(token: str = "", limit: int = 100, profile: gr.OAuthProfile | None = None) -> list[dict]:
        """The session's ledger rows, newest first: kind, amount, balance after, request id, note, time.

        Args:
            token: your session token from /session_start.
            limit: how many rows (1-1000).
        """
        account = account_for(services, token, profile)
        rows = services.ledger.entries(account.id, limit=max(1, min(int(limit), 1000)))
        return [{k: v for k, v in row.items() if k != "id"} for row in rows]  # the table's sequence number stays internal

    @user_errors
    def cancel(token: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Stop your running generations at their next step; each is refunded in full.

        Args:
            token: your session token from /session_start.
        """
        account = account_for(services, token, profile)
        return {"cancelled": services.cancel(account)}

    @user_errors
    def confirm_age(token: str = "", confirm: bool = True, profile: gr.OAuthProfile | None = None) -> dict:
        """Members: confirm that you are 18 or older (recorded on your account), which 18+ prompts need; false withdraws it.

        Args:
            token: your session token from /session_start (signed-in members on the Space are recognised by their login).
            confirm: true confirms you are 18 or older; false withdraws the confirmation.
        """
        account = account_for(services, token, profile)
        return services.identity.confirm_age(account, bool(confirm)).as_dict()

    api(services, session_start, api_name="session_start")
    api(services, cancel, api_name="cancel", concurrency_limit=None)
    api(services, confirm_age, api_name="confirm_age")
    api(services, balance, api_name="balance")
    api(services, quote, api_name="quote")
    api(services, ledger, api_name="ledger")
    return SessionUI(token, bar, loaded)
