"""Turn the domain's user-facing errors into messages a visitor can act on."""
from __future__ import annotations

import functools
import logging

import gradio as gr

from services.errors import UserError

log = logging.getLogger(__name__)


def user_errors(fn):
    """Decorator: a `UserError` becomes gr.Error with its message; anything else is a bug, logged and reported plainly."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as exc:
            raise gr.Error(str(exc)) from exc
        except Exception as exc:  # a bug or a failed load: say so without leaking internals
            log.exception("request failed")
            raise gr.Error(
                f"Generation failed ({type(exc).__name__}); nothing was saved and nothing was charged. Try again or pick another model."
            ) from exc

    return wrapper
