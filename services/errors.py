"""The one user-facing error base class.

Anything the visitor can fix or retry raises a `UserError` subclass whose message says what to change; the UI shows
that message as it is (and nothing else: any other exception is a bug, logged and reported without internals).
Refusals from the pipeline layer (unknown model, task, size, missing weights, an option a family cannot take) are
`pipelines.errors.RequestRefused`; services turn them into `ModelRefused` where they call the pipeline layer
(`catalogue` and the runner), so the UI only ever sees `UserError`.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from pipelines.errors import RequestRefused


class UserError(Exception):
    """A request that cannot be done as asked; str(exc) is the whole message for the visitor."""


class InvalidRequest(UserError, ValueError):
    """The request's parameters cannot run as given; the message names the parameter and what to change."""


class ModelRefused(UserError, ValueError):
    """The pipeline layer refused the request (model, task, size, weights, option); its message says why."""


class Cancelled(UserError):
    """The visitor (or a timeout) stopped the run between two steps; it was refunded."""

    def __init__(self, message: str = "Generation cancelled; nothing was charged."):
        super().__init__(message)


@contextlib.contextmanager
def model_refusals() -> Iterator[None]:
    """Re-raise the pipeline layer's refusals as `ModelRefused` (same message)."""
    try:
        yield
    except RequestRefused as exc:
        raise ModelRefused(str(exc)) from exc
