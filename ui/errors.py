"""Turn the domain's typed errors into messages a visitor can act on."""
from __future__ import annotations

import functools
import logging

import gradio as gr

from pipelines.registry import InvalidSize, UnknownModel, UnsupportedTask
from pipelines.runtime import RemoteBackendUnavailable, WeightsUnavailable
from pipelines.types import GenerationCancelled
from services.characters import CharacterError
from services.figure_presets import FigurePresetsError
from services.figures import FigureError
from services.generation import InvalidRequest
from services.history import ReportError
from services.identity import InvalidSession
from services.jobs import GenerationTimedOut, IdempotencyConflict, PreviousAttemptFailed
from services.ledger import InsufficientCredits
from services.policy import FeatureLocked, PromptRefused
from services.safety import SafetyBlocked
from services.uploads import InvalidUpload
from services.image_presets import ImagePresetsError
from services.video import VideoError

log = logging.getLogger(__name__)

USER_ERRORS = (
    InvalidRequest,
    InvalidSize,
    UnknownModel,
    UnsupportedTask,
    WeightsUnavailable,
    RemoteBackendUnavailable,
    InvalidSession,
    InsufficientCredits,
    IdempotencyConflict,
    PreviousAttemptFailed,
    GenerationTimedOut,
    SafetyBlocked,
    ReportError,
    PromptRefused,
    FeatureLocked,
    InvalidUpload,
    FigureError,
    FigurePresetsError,
    VideoError,
    ImagePresetsError,
    CharacterError,
)


def user_errors(fn):
    """Decorator: domain errors become gr.Error with their message; anything else is logged and reported plainly."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        except GenerationCancelled as exc:
            raise gr.Error("Generation cancelled; nothing was charged.") from exc
        except Exception as exc:  # a bug or a failed load: say so without leaking internals
            log.exception("request failed")
            raise gr.Error(
                f"Generation failed ({type(exc).__name__}); nothing was saved and nothing was charged. Try again or pick another model."
            ) from exc

    return wrapper
