"""The public API as a deliberate surface.

A UI event's API parameters would take the components' current values as their defaults (an example prompt, the
first model in a dropdown, an empty textbox that then counts as required). So every public endpoint that returns
UI components (galleries, videos) is registered twice from one function:

- `public(fn, outputs, api_name=...)`: the API endpoint. Its parameters are fn's own, in order, with fn's own
  defaults (hidden components hold them), so gradio_client callers get exactly the documented signature; a
  parameter without a default is required. UI-only state (`ui_state`) is kept out of the API.
- `ui_inputs(fn, {...})`: the inputs for the private UI event of the same function: the visible components by
  parameter name, and the function's default for every parameter the UI does not show.

Both events share one concurrency group, so the UI and the API queue behind the same limit (as many calls at once as
there are run slots; the runner's slots then keep local pipelines and provider requests apart). Every argument is checked
against services.runs.params before the function runs (`validated`), and JSON results are shown as clients may see
them (`viewed`: /outputs/ URLs, no server paths). `api` does both for plain JSON endpoints (gr.api). A handler's
progress tracker is throttled there too (`ThrottledProgress`): a fast model's every step would be an event.
"""
from __future__ import annotations

import functools
import inspect
import time
from typing import Any, Callable

import gradio as gr
from gradio.components.api_component import Api

from services.errors import UserError
from services.runs.params import RECORD_FIELDS, check_argument, rule_for

from .web import public_view

# Parameters gradio fills itself (by annotation or default): never API inputs.
SPECIAL = ("profile", "request", "progress")
PROGRESS_PER_SECOND = 10  # progress updates one request sends at most (a new phase and the last step always go)


class ThrottledProgress:
    """A gr.Progress that passes on at most `per_second` updates: the first, each new phase (desc or unit), the last
    step (done == total, or 1.0) and otherwise one per interval. Gradio sends every update as a progress event, and a
    tiny model's steps come every few milliseconds; a bar moving ten times a second looks the same."""

    def __init__(self, progress: gr.Progress, per_second: float = PROGRESS_PER_SECOND, clock: Callable[[], float] = time.monotonic):
        self._progress, self._interval, self._clock = progress, 1.0 / per_second, clock
        self._last_at: float | None = None
        self._last_phase: tuple | None = None

    def __call__(self, progress, desc: str | None = None, total=None, unit: str = "steps", **kwargs: Any):
        now, phase = self._clock(), (desc, unit)
        last = progress is None or (isinstance(progress, tuple) and progress[1] is not None and progress[0] >= progress[1]) \
            or (isinstance(progress, (int, float)) and progress >= 1)
        if self._last_at is None or last or phase != self._last_phase or now - self._last_at >= self._interval:
            self._last_at, self._last_phase = now, phase
            return self._progress(progress, desc=desc, total=total, unit=unit, **kwargs)
        return progress

    def __getattr__(self, name: str) -> Any:  # tqdm, update, ...: the tracker's own
        return getattr(self._progress, name)

    def __iter__(self):
        return iter(self._progress)

    def __len__(self) -> int:
        return len(self._progress)


def _parameters(fn: Callable) -> list[inspect.Parameter]:
    params = []
    for name, param in inspect.signature(fn).parameters.items():
        if name in SPECIAL:
            break  # gradio inserts these by position: every API parameter must come before them
        params.append(param)
    return params


def kind_of(param: inspect.Parameter, files: tuple[str, ...] = ()) -> tuple[str, bool]:
    """(rule kind, whether None is allowed) from a parameter's annotation."""
    annotation = str(param.annotation).replace(" ", "")
    optional = "None" in annotation.split("|") or param.default is None
    if param.name in files:
        return "file", True
    if annotation.startswith("list[dict"):
        return "records", optional
    for kind in ("list", "dict", "bool", "int", "float", "str"):
        if annotation.startswith(kind) or annotation.startswith(f"{kind}["):
            return kind, optional
    raise TypeError(f"{param.name}: no API rule for annotation {param.annotation!r}")


SCHEMA = {"int": "integer", "float": "number", "str": "string", "bool": "boolean", "list": "array", "dict": "object",
          "records": "array"}


def _schema(param: inspect.Parameter, kind: str) -> dict[str, Any]:
    rule = rule_for(param.name, kind)
    schema: dict[str, Any] = {"type": SCHEMA[kind], "description": rule.describe()}
    if kind in ("int", "float"):
        schema.update(minimum=rule.low, maximum=rule.high)
    elif kind == "str":
        schema["maxLength"] = rule.max_len
    elif kind == "list":
        schema.update(items={"type": "string"}, maxItems=rule.max_len)
    elif kind == "dict":
        schema.update(additionalProperties={"type": "string"}, maxProperties=rule.max_len)
    elif kind == "records":
        schema.update(items={"type": "object", "additionalProperties": {"type": ["string", "number"]}, "maxProperties": RECORD_FIELDS},
                      maxItems=rule.max_len)
    return schema


def _hidden(param: inspect.Parameter, files: tuple[str, ...]) -> gr.components.Component:
    """An API input that passes the raw value through (the validator checks it): typed in the API docs."""
    has_default = param.default is not inspect.Parameter.empty
    kind, _ = kind_of(param, files)
    if kind == "file":
        return gr.File(value=None, type="filepath", visible=False, label=param.name)
    return Api(param.default if has_default else None, _schema(param, kind), label=param.name)


def validated(fn: Callable, files: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> Callable:
    """`fn` with every API argument checked against services.runs.params before any work: the wrong type, a value
    out of range or too long is refused with a message naming the parameter (never reported as a failed run).
    A null for an argument with a default takes the default. `skip`: UI-only state, not an API argument."""
    signature = inspect.signature(fn)
    params = {p.name: p for p in _parameters(fn) if p.name not in skip}
    kinds = {name: kind_of(p, files) for name, p in params.items()}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        try:
            for name, (kind, optional) in kinds.items():
                if name not in bound.arguments:
                    continue
                value = bound.arguments[name]
                default = params[name].default
                if value is None and default is not inspect.Parameter.empty and default is not None:
                    value = default
                bound.arguments[name] = check_argument(name, kind, value, optional)
        except UserError as exc:
            raise gr.Error(str(exc)) from exc
        if isinstance(bound.arguments.get("progress"), gr.Progress):
            bound.arguments["progress"] = ThrottledProgress(bound.arguments["progress"])
        return fn(*bound.args, **bound.kwargs)

    return wrapper


def viewed(fn: Callable, services: Any, outputs: list | None = None) -> Callable:
    """`fn` whose JSON results are shown as clients may see them (ui.web.public_view: /outputs/ URLs, no server paths).
    With `outputs`, only the values bound for gr.JSON components are rewritten (galleries and files keep real paths
    for gradio to serve)."""
    json_slots = None if outputs is None else [i for i, c in enumerate(outputs) if isinstance(c, gr.JSON)]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        result = fn(*args, **kwargs)
        if json_slots is None:
            return public_view(result, services)
        if not json_slots:
            return result
        single = len(outputs) == 1
        values = [result] if single else list(result)
        for i in json_slots:
            values[i] = public_view(values[i], services)
        return values[0] if single else tuple(values)

    return wrapper


def api(services: Any, fn: Callable, api_name: str | None = None, **kwargs: Any) -> Any:
    """A JSON endpoint from a typed function (gr.api): arguments validated first, results as clients may see them."""
    return gr.api(viewed(validated(fn), services), api_name=api_name or fn.__name__, **kwargs)


def bounds(name: str) -> dict[str, float]:
    """A number component's limits from the parameter's rule (the UI shows what the API accepts)."""
    rule = rule_for(name, "float")
    return {"minimum": rule.low, "maximum": rule.high}


def _mirror(param: inspect.Parameter, like: gr.components.Component) -> gr.components.Component:
    """A hidden copy of a UI component's validation (choices, bounds) holding the parameter's own default."""
    value = None if param.default is inspect.Parameter.empty else param.default
    common = {"visible": False, "label": param.name, "value": value}
    if isinstance(like, gr.Dropdown):
        return gr.Dropdown(choices=like.choices, multiselect=like.multiselect, allow_custom_value=like.allow_custom_value,
                           max_choices=like.max_choices, **common)
    if isinstance(like, gr.Radio):
        return gr.Radio(choices=like.choices, **common)
    if isinstance(like, gr.CheckboxGroup):
        return gr.CheckboxGroup(choices=like.choices, **common)
    if isinstance(like, gr.File):
        return gr.File(file_types=like.file_types, type="filepath", visible=False, label=param.name)
    raise TypeError(f"{param.name}: cannot mirror a {type(like).__name__}")


def public(
    services: Any,
    fn: Callable,
    outputs: list[gr.components.Component],
    *,
    api_name: str,
    files: tuple[str, ...] = (),
    ui_state: tuple[str, ...] = (),
    like: dict[str, gr.components.Component] | None = None,
    concurrency_limit: int | None | str = "slots",
) -> Any:
    """Register `fn` as the public endpoint `api_name`, with fn's signature as its parameters and defaults.

    `like` names UI components whose choices (or accepted file types) a parameter shares: gradio then refuses a value
    outside them with its own message, as it does in the UI. Every other argument is checked by the rules.
    `concurrency_limit` "slots": as many calls at once as the run queues admit (services/runs/slots.py decides who
    waits and who is told the machine is busy: a provider's slow answer never holds up a local run, nor the reverse)."""
    like = like or {}
    if concurrency_limit == "slots":
        concurrency_limit = services.settings.event_concurrency
    inputs = []
    for param in _parameters(fn):
        if param.name in ui_state:
            inputs.append(gr.State(None if param.default is inspect.Parameter.empty else param.default))
        elif param.name in like:
            inputs.append(_mirror(param, like[param.name]))
        else:
            inputs.append(_hidden(param, files))
    files = tuple(files) + tuple(n for n, c in like.items() if isinstance(c, gr.File))
    trigger = gr.Button(visible=False)
    return trigger.click(viewed(validated(fn, files, skip=ui_state), services, outputs), inputs, outputs, api_name=api_name, concurrency_limit=concurrency_limit,
                         concurrency_id=api_name)


def ui_inputs(fn: Callable, given: dict[str, gr.components.Component]) -> list[gr.components.Component]:
    """The private UI event's inputs for `fn`: visible components by parameter name, the default for the rest."""
    names = [p.name for p in _parameters(fn)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise TypeError(f"{fn.__name__} has no parameters {unknown}")
    inputs = []
    for param in _parameters(fn):
        if param.name in given:
            inputs.append(given[param.name])
        elif param.default is inspect.Parameter.empty:
            raise TypeError(f"{fn.__name__}: the UI must provide required parameter {param.name!r}")
        else:
            inputs.append(gr.State(param.default))
    return inputs


def ui_event(services: Any, trigger, fn: Callable, given: dict[str, gr.components.Component], outputs, *, api_name: str, **kwargs):
    """The private UI event for `fn` on `trigger` (a listener such as `button.click`), queued with its public twin."""
    files = tuple(n for n, c in given.items() if isinstance(c, gr.File))
    states = tuple(n for n, c in given.items() if isinstance(c, gr.State) and not isinstance(c, gr.BrowserState))
    return trigger(viewed(validated(fn, files, skip=states), services, outputs), ui_inputs(fn, given), outputs, api_name=f"{api_name}_from_ui", api_visibility="private",
                   concurrency_limit=services.settings.event_concurrency, concurrency_id=api_name, **kwargs)


def overriding(fn: Callable, **fixed: Any) -> Callable:
    """`fn` with some arguments fixed (e.g. Regenerate = the same call with a random seed). It keeps fn's signature,
    so gradio still injects the signed-in profile and the progress tracker into it."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.arguments.update(fixed)
        return fn(*bound.args, **bound.kwargs)

    return wrapper


def required(**values: Any) -> None:
    """Refuse with the app's own message when a required API argument is missing (every API parameter has a default,
    so a call without a token or an id reaches the app instead of failing in the client)."""
    missing = [name for name, value in values.items() if value is None or value == "" or value == []]
    if missing:
        raise gr.Error(f"Missing {', '.join(missing)}: this endpoint needs {'them' if len(missing) > 1 else 'it'} (see the API docs).")
