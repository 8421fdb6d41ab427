"""Credits: balance, plan and what it unlocks, the ledger, prices, and (for QA/admins) report review."""
from __future__ import annotations

import datetime as dt

import gradio as gr

from services.container import Services
from services.accounts.identity import Account

from .api import api, required
from .errors import user_errors
from .session import SessionUI, account_for, bar_text, member_how, start_session

FEATURES = {
    "adult_prompts": "18+ prompts (after confirming your age)",
    "image_to_video": "Image to Video",
    "video_prompt": "free prompts on video",
    "review": "the report review view",
}
LEDGER_HEADERS = ["When (UTC)", "Kind", "Amount", "Balance after", "Request", "Note"]
REPORT_HEADERS = ["Report", "Reason", "Details", "Refund", "Status", "Filed (UTC)", "Request", "Image"]


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


KIND_WORDS = {"grant": "Grant", "reserve": "Reserved", "refund": "Refund", "adjustment": "Adjustment", "transfer": "Transfer"}


def ledger_rows(entries: list[dict]) -> list[list]:
    """The ledger as a visitor reads it: a reservation that was captured shows once, as "Charged" (the capture row
    itself moves no credits and is folded into it); newest first."""
    captured = {e["request_id"]: e for e in entries if e["kind"] == "capture"}
    rows = []
    for e in entries:
        if e["kind"] == "capture" and e["amount"] == 0:
            continue
        kind, note = KIND_WORDS.get(e["kind"], e["kind"]), e["note"]
        if e["kind"] == "reserve" and e["request_id"] in captured:
            kind, note = "Charged", captured[e["request_id"]]["note"] or note
        rows.append([_when(e["created_at"]), kind, e["amount"], e["balance_after"], e["request_id"][:12], note])
    return rows


def summary(services: Services, account: Account) -> str:
    unlocked = [FEATURES[f] for f in account.unlocks if f in FEATURES]
    lines = [
        f"### {account.balance_text().capitalize()}",
        f"**Plan:** {account.tier_label} — {services.plans.tier(account.tier).description}",
        f"**Unlocked:** {', '.join(unlocked) if unlocked else 'the standard features'}.",
    ]
    if account.can("adult_prompts") and account.kind != "qa":
        lines.append("**Age:** " + ("you confirmed that you are 18 or older." if account.age_confirmed else
                                    "18+ prompts need your confirmation that you are 18 or older (below)."))
    if account.kind == "visitor":
        member = services.plans.tier("member")
        lines.append(
            f"Members get {member.starting_grant} credits and {', '.join(FEATURES[f] for f in member.unlocks if f in FEATURES)}. "
            f"{member_how(services)}."
        )
    lines.append("Prices are reserved when you click Generate and refunded automatically if a run fails or is blocked.")
    return "\n\n".join(lines)


def build(services: Services, demo: gr.Blocks, session: SessionUI, tab: gr.Tab) -> None:
    with gr.Row():
        info = gr.Markdown("", elem_id="credits-summary")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="credits-refresh")
    with gr.Row(visible=False) as age_row:
        age_box = gr.Checkbox(label="I confirm that I am 18 or older (18+ prompts need this)", value=False, elem_id="credits-age")
        age_save = gr.Button("Save", size="sm", scale=0, min_width=100, elem_id="credits-age-save")
    ledger_table = gr.Dataframe(headers=LEDGER_HEADERS, interactive=False, label="Ledger (newest first)", elem_id="credits-ledger", wrap=True,
                                column_widths=["17%", "10%", "9%", "11%", "13%", "40%"])
    with gr.Accordion("Prices (credits per output)", open=False):
        gr.Dataframe(services.catalogue.price_table(), headers=["Model", "Task", "Per output by resolution", "Note"], interactive=False, wrap=True)
    with gr.Accordion("QA / admin", open=False, visible=services.identity.admin_enabled):
        admin_key = gr.Textbox(label="Admin key", type="password", elem_id="credits-admin-key")
        enter_qa = gr.Button("Enter QA mode (unlimited credits, report review)", elem_id="credits-enter-qa")
    with gr.Column(visible=False) as review_box:
        gr.Markdown("### Reports waiting for review")
        reports_table = gr.Dataframe(headers=REPORT_HEADERS, interactive=False, wrap=True, elem_id="review-table")
        reports_gallery = gr.Gallery(fit_columns=False, label="Reported images", columns=6, height=220, format="png", type="filepath")
        with gr.Row():
            report_id = gr.Textbox(label="Report id", max_lines=1, elem_id="review-id")
            approve = gr.Button("Approve (refund)", variant="primary", elem_id="review-approve")
            reject = gr.Button("Reject", elem_id="review-reject")
        review_status = gr.Markdown("")

    def review_view(account: Account):
        if not account.can("review"):
            return gr.Column(visible=False), [], []
        pending = services.history.reports("pending")
        table = [[r["id"], r["reason"], r["details"], r["refund"], r["status"], _when(r["created_at"]), r["generation_id"], r["idx"]] for r in pending]
        return gr.Column(visible=True), table, [(r["file"], f"#{r['id']} {r['reason']}") for r in pending]

    @user_errors
    def show(token: str, profile: gr.OAuthProfile | None = None):
        account = account_for(services, token, profile)
        rows = ledger_rows(services.ledger.entries(account.id, limit=200))
        asks_age = account.can("adult_prompts") and account.kind != "qa"
        return (summary(services, account), rows, *review_view(account), gr.Row(visible=asks_age), account.age_confirmed)

    outputs = [info, ledger_table, review_box, reports_table, reports_gallery, age_row, age_box]
    gr.on([refresh.click, tab.select], show, [session.token], outputs, api_name="credits_view", api_visibility="private")
    session.loaded.then(show, [session.token], outputs, api_visibility="private")

    @user_errors
    def qa_login(key: str, request: gr.Request):
        if not key:
            raise gr.Error("Enter the admin key first.")
        started = start_session(services, None, request, None, admin_key=key)
        return (started.token, bar_text(started.account, " ".join(started.messages)), "", summary(services, started.account), [], *review_view(started.account))

    enter_qa.click(qa_login, [admin_key], [session.token, session.bar, admin_key, info, ledger_table, review_box, reports_table, reports_gallery], api_visibility="private")

    @user_errors
    def save_age(confirmed: bool, token: str, profile: gr.OAuthProfile | None = None):
        account = services.identity.confirm_age(account_for(services, token, profile), bool(confirmed))
        return summary(services, account)

    age_save.click(save_age, [age_box, session.token], [info], api_visibility="private")

    @user_errors
    def decide(number: str | None, token: str, approve_it: bool):
        if not (number or "").strip():
            raise gr.Error("Enter the report id from the table.")
        admin = account_for(services, token)
        done = services.history.review(admin, number.strip(), approve=approve_it)
        verdict = f"Report {done['id']} approved: {done['refund']} credit(s) refunded." if approve_it else f"Report {done['id']} rejected."
        return (verdict, *review_view(admin)[1:])

    approve.click(lambda n, t: decide(n, t, True), [report_id, session.token], [review_status, reports_table, reports_gallery], api_visibility="private")
    reject.click(lambda n, t: decide(n, t, False), [report_id, session.token], [review_status, reports_table, reports_gallery], api_visibility="private")

    @user_errors
    def review_reports(token: str = "", status: str = "pending") -> list[dict]:
        """QA/admin only: reports with the given status.

        Args:
            token: a QA session's token (/session_start with admin_key).
            status: pending, approved, rejected, or "" for all.
        """
        admin = account_for(services, token)
        if not admin.can("review"):
            raise gr.Error("Only QA/admin sessions can list reports.")
        return services.history.reports(status or None)

    @user_errors
    def review_report(token: str = "", report_id: str = "", approve: bool = False) -> dict:
        """QA/admin only: approve or reject a pending report.

        Args:
            token: a QA session's token (/session_start with admin_key).
            report_id: the report's id (see /review_reports).
            approve: true approves it (refunds the image's credits); false rejects it.
        """
        required(report_id=report_id)
        return services.history.review(account_for(services, token), report_id, bool(approve))

    api(services, review_reports, api_name="review_reports")
    api(services, review_report, api_name="review_report")
