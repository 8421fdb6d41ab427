"""Long requests as jobs to poll, for MCP and any client that must not hold a call open for minutes.

`job_twin(fn, api_name=...)` registers `/<api_name>_job` from the same surface function as `/<api_name>`: the same
parameters and defaults, but it answers at once with a job id (services.runs.background); `/job` polls it (state,
steps done, and once done the files and the settings JSON). The function still hands its run to the one runner, so the
price, the refund on failure and the idempotency key (the job id) are those of the blocking endpoint.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import gradio as gr

from services.errors import UserError

from .api import public, required
from .errors import user_errors
from .session import account_for

JOB_DOC = ("Like /{name}, but answers at once with a job id instead of waiting for the result: poll /job with it "
           "(state, progress, then the files and settings). Charged as /{name}; a refusal (price, plan, missing "
           "argument) comes back from this call, nothing charged.")


def _args_section(fn: Callable) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc[doc.index("Args:"):] if "Args:" in doc else ""


def job_twin(services: Any, fn: Callable, *, api_name: str, names: tuple[str, ...], file_slots: tuple[int, ...] = (0,),
             like: dict | None = None, files: tuple[str, ...] = ()) -> Any:
    """Register `/<api_name>_job` for the surface function `fn`, whose result values are called `names` (the values at
    `file_slots` are files)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def starter(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        account = account_for(services, bound.arguments.get("token", ""), bound.arguments.get("profile"))
        key = bound.arguments.get("idempotency_key") or services.background.new_id(api_name)
        if "idempotency_key" in signature.parameters:  # the job id is the paid run's idempotency key
            bound.arguments["idempotency_key"] = key

        def work(progress) -> dict[str, Any]:
            bound.arguments["progress"] = progress
            try:
                values = fn(*bound.args, **bound.kwargs)
            except gr.Error as exc:  # the surface's message for the visitor
                raise UserError(exc.message if isinstance(exc.message, str) else str(exc)) from exc
            values = values if isinstance(values, tuple) else (values,)
            result: dict[str, Any] = {"files": [str(values[i]) for i in file_slots if values[i]]}
            result.update({name: value for i, (name, value) in enumerate(zip(names, values)) if i not in file_slots})
            return result

        job = services.background.start(account.id, api_name, work, job_id=key)
        return {**job.view(), "poll": "/job"}

    starter.__doc__ = JOB_DOC.format(name=api_name) + "\n\n" + _args_section(fn)
    return public(services, user_errors(starter), [gr.JSON(visible=False)], api_name=f"{api_name}_job", like=like, files=files,
                  concurrency_limit=None)


def register(services: Any) -> None:
    """The `/job` endpoint (inside the app's Blocks)."""

    @user_errors
    def job(token: str = "", job_id: str = "", profile: gr.OAuthProfile | None = None):
        """Poll a job started by a `*_job` endpoint: its state (running, done or error), steps done of total and what it
        is doing; once done, its files (as URLs) and settings JSON; on error, the message (a failed job is refunded).

        Args:
            token: your session token from /session_start (the one that started the job).
            job_id: the job_id a `*_job` endpoint answered.
        """
        account = account_for(services, token, profile)
        required(job_id=job_id)
        status = services.background.get(account.id, job_id)
        result = status.pop("result") or {}
        record = result.pop("record", None)
        if record is not None:  # read back from the database (after a restart)
            result = {"files": [str(p) for p in record.files], "settings": record.as_dict()}
        files = result.pop("files", None) or None
        return {**status, **result}, files

    public(services, job, [gr.JSON(visible=False), gr.File(visible=False, file_count="multiple")], api_name="job",
           concurrency_limit=None)
