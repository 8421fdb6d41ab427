"""Turn the domain's user-facing errors into messages a visitor can act on, and keep the page when they happen.

Two layers:
- `user_errors` (on the functions behind every endpoint): a `UserError` becomes a `VisitorError` carrying its
  message; anything else is a bug, logged once with its traceback and reported plainly (nothing was charged).
  API callers (gradio_client, MCP) receive these as errors.
- `keep_pages` (once, on the built app): every UI event shows such an error as a toast and leaves every output as
  it was. gradio would otherwise put each output of the event into its error state (a red "Error" pill over a
  blanked panel, covering the very control the message asks the visitor to use). Stop is a neutral notice.
"""
from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from services.errors import Cancelled, UserError

log = logging.getLogger(__name__)


class VisitorError(gr.Error):
    """A message for the visitor (their mistake, or a failure already logged): gradio prints no traceback for it."""

    def __init__(self, message: str, **kwargs):
        kwargs.setdefault("print_exception", False)
        super().__init__(message, **kwargs)


def user_errors(fn):
    """Decorator: a `UserError` becomes a VisitorError with its message; anything else is a bug, logged once and
    reported plainly."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as exc:
            raise VisitorError(str(exc)) from exc
        except Exception as exc:  # a bug or a failed load: say so without leaking internals
            log.exception("request failed")
            raise VisitorError(
                f"Generation failed ({type(exc).__name__}); nothing was saved and nothing was charged. Try again or pick another model."
            ) from exc

    return wrapper


def clicked(items: list | None, evt: gr.SelectData):
    """The item a gallery click picked, or the visitor's message when the list changed under the click."""
    items = items or []
    if not isinstance(evt.index, int) or not 0 <= evt.index < len(items):
        raise VisitorError("That item is no longer listed; refresh the list and pick again.")
    return items[evt.index]


def _unchanged(outputs: int):
    if outputs == 0:
        return None
    return gr.skip() if outputs == 1 else tuple(gr.skip() for _ in range(outputs))


def _notify(exc: BaseException) -> None:
    if isinstance(exc, gr.Error):
        message = exc.message
        stopped = isinstance(exc.__cause__, Cancelled)
    else:  # a bug in a UI handler itself: logged once, the visitor told plainly
        log.exception("UI event failed")
        message = f"Something went wrong ({type(exc).__name__}); nothing was charged. Try again."
        stopped = False
    if stopped:
        gr.Info(message, title="Stopped")
    else:
        gr.Warning(message, title="Not done")


def keep_page(fn, outputs: int):
    """`fn` as a UI event that shows errors as a toast and leaves its `outputs` outputs unchanged."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                _notify(exc)
                yield _unchanged(outputs)
        return generator

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            _notify(exc)
            return _unchanged(outputs)
    return wrapper


def quiet(fn):
    """`fn` as a public endpoint: its errors still reach the API caller, but a message meant for them (gr.Error) is
    not printed with a traceback (bugs were logged once where they happened)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as exc:
            exc.print_exception = False
            raise
    return wrapper


def keep_pages(demo: gr.Blocks) -> int:
    """Wrap every event of the app once: UI events keep the page (toast, outputs unchanged); public endpoints keep
    raising for API callers, without a traceback for a visitor's mistake. Returns how many UI events were wrapped."""
    wrapped = 0
    for block_fn in demo.fns.values():
        fn = block_fn.fn
        if fn is None or getattr(fn, "_wrapped_errors", False) or inspect.iscoroutinefunction(fn) \
                or inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn) and block_fn.api_visibility == "public":
            continue  # async handlers (none today) would need their own wrappers
        if block_fn.api_visibility == "public":
            block_fn.fn = quiet(fn)
        else:
            block_fn.fn = keep_page(fn, len(block_fn.outputs))
            wrapped += 1
        block_fn.fn._wrapped_errors = True
    return wrapped
