"""QA tab (QA sessions only, hidden for others like Moderation): start a QA run of the presets in the background,
watch its progress, list runs and open a report (the HTML report's body, plus the file to download). The same as
API endpoints for QA sessions: /qa_run, /qa_runs, /qa_report."""
from __future__ import annotations

import html

import gradio as gr

from services.container import Services
from services.qa import FAMILIES
from services.qa.jobs import QAJobs
from services.qa.report import body

from .api import api, required
from .errors import user_errors
from .session import SessionUI, account_for, optional_account


def register(services: Services) -> tuple[QAJobs, dict]:
    jobs = QAJobs(services)

    @user_errors
    def qa_run(token: str = "", presets: str = "", model: str = "sdxl-base", profile: gr.OAuthProfile | None = None) -> dict:
        """QA sessions: start a QA run of the presets in the background (free: QA accounts are unlimited); poll /qa_runs.

        Args:
            token: a QA session token.
            presets: what to check (required): all, figures, images, video, loras or models.
            model: the image model the figure and image presets run on (a registry id).
        """
        account = account_for(services, token, profile)
        jobs.runs(account)  # refused for anyone but a QA session before anything else is checked
        required(presets=presets)
        run_id = jobs.start(account, model or "sdxl-base", presets)
        return {"run_id": run_id}

    @user_errors
    def qa_runs(token: str = "", profile: gr.OAuthProfile | None = None) -> list[dict]:
        """QA sessions: the QA runs, newest first, with state (running, done, error), progress and failures.

        Args:
            token: a QA session token.
        """
        return jobs.runs(account_for(services, token, profile))

    @user_errors
    def qa_report(token: str = "", run_id: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """QA sessions: a QA run's result once done (every preset with pass/fail, error, seconds, composed prompt and
        checks); while it runs, its status (state, done, total).

        Args:
            token: a QA session token.
            run_id: a run id from /qa_run or /qa_runs.
        """
        account = account_for(services, token, profile)
        jobs.runs(account)
        required(run_id=run_id)
        status = jobs.status(account, run_id)
        if status["state"] != "done":
            return status
        result = jobs.result(account, run_id)
        return {**result, "cases": [{k: v for k, v in c.items() if k not in ("thumbnail", "files")} for c in result["cases"]]}

    for fn in (qa_run, qa_runs, qa_report):
        api(services, fn, api_name=fn.__name__)
    return jobs, {"qa_run": qa_run, "qa_runs": qa_runs, "qa_report": qa_report}


def _bar(run: dict) -> str:
    """A running QA run as a progress bar: presets done of total and the one running now."""
    done, total = run["done"], run["total"]
    return (f'<div class="qa-progress"><b>{html.escape(run["run_id"])}</b> {done}/{total or "?"} '
            f'<progress value="{done}" max="{max(total, 1)}" style="width:60%"></progress> '
            f'<small>{html.escape(str(run.get("current") or ""))}</small></div>')


def _runs_table(runs: list[dict]) -> list[list]:
    return [[r["run_id"], r["model"], r["presets"], r["state"], f"{r['done']}/{r['total']}", r.get("failed"), r.get("seconds")] for r in runs]


def build(services: Services, session: SessionUI, tab: gr.Tab) -> None:
    jobs, functions = register(services)
    gr.Markdown("Run every preset through the real request path (free for QA sessions). Reports list pass/fail per preset.")
    with gr.Row():
        model = gr.Dropdown([e.id for e in services.catalogue.entries("text-to-image", local=True)], value="sdxl-base",
                            label="Model", elem_id="qa-model")
        presets = gr.Dropdown(["all", *FAMILIES], value="all", label="Presets", elem_id="qa-presets")
        start = gr.Button("Start QA run", variant="primary", elem_id="qa-start")
    status = gr.HTML(elem_id="qa-status")
    runs = gr.Dataframe(headers=["run", "model", "presets", "state", "progress", "failed", "seconds"], interactive=False,
                        elem_id="qa-runs")
    with gr.Row():
        pick = gr.Dropdown([], label="Open a report", allow_custom_value=True, elem_id="qa-pick")
        download = gr.File(label="HTML report", interactive=False, elem_id="qa-download")
    shown = gr.HTML(elem_id="qa-report")
    timer = gr.Timer(2.0, active=False)

    def refresh(token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        if account is None or account.kind != "qa":
            return "<p>QA sessions only.</p>", [], gr.update(), gr.Timer(active=False)
        listed = jobs.runs(account)
        running = [r for r in listed if r["state"] == "running"]
        text = "".join(_bar(r) for r in running) or "<p>No run in progress.</p>"
        done = [r["run_id"] for r in listed if r["state"] == "done"]
        return text, _runs_table(listed), gr.Dropdown(choices=done), gr.Timer(active=bool(running))

    outputs = [status, runs, pick, timer]
    gr.on([tab.select, timer.tick], refresh, [session.token], outputs, api_visibility="private")

    @user_errors
    def on_start(model_id, family, token, profile: gr.OAuthProfile | None = None):
        functions["qa_run"](token=token, model=model_id, presets=family, profile=profile)
        return refresh(token, profile)

    start.click(on_start, [model, presets, session.token], outputs, api_visibility="private")

    @user_errors
    def on_pick(run_id, token, profile: gr.OAuthProfile | None = None):
        if not run_id:
            return "", None
        account = account_for(services, token, profile)
        return body(jobs.result(account, run_id)), str(jobs.html_path(account, run_id))

    pick.input(on_pick, [pick, session.token], [shown, download], api_visibility="private")

    def shown_to(token, profile: gr.OAuthProfile | None = None):
        account = optional_account(services, token, profile)
        return gr.Tab(visible=account is not None and account.kind == "qa")

    session.bar.change(shown_to, [session.token], [tab], api_visibility="private")
