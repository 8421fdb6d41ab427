"""The public API as a deliberate surface.

A UI event's API parameters would take the components' current values as their defaults (an example prompt, the
first model in a dropdown, an empty textbox that then counts as required). So every public endpoint that returns
UI components (galleries, videos) is registered twice from one function:

- `public(fn, outputs, api_name=...)`: the API endpoint. Its parameters are fn's own, in order, with fn's own
  defaults (hidden components hold them), so gradio_client callers get exactly the documented signature; a
  parameter without a default is required. UI-only state (`ui_state`) is kept out of the API.
- `ui_inputs(fn, {...})`: the inputs for the private UI event of the same function: the visible components by
  parameter name, and the function's default for every parameter the UI does not show.

Both events share one concurrency group, so the UI and the API queue behind the same limit.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import gradio as gr

# Parameters gradio fills itself (by annotation or default): never API inputs.
SPECIAL = ("profile", "request", "progress")


def _parameters(fn: Callable) -> list[inspect.Parameter]:
    params = []
    for name, param in inspect.signature(fn).parameters.items():
        if name in SPECIAL:
            break  # gradio inserts these by position: every API parameter must come before them
        params.append(param)
    return params


def _hidden(param: inspect.Parameter, files: tuple[str, ...]) -> gr.components.Component:
    annotation = str(param.annotation)
    has_default = param.default is not inspect.Parameter.empty
    value = param.default if has_default else None
    common = {"visible": False, "label": param.name}
    if param.name in files:
        return gr.File(value=None, type="filepath", **common)
    if annotation.startswith(("list", "dict", "tuple")):
        return gr.JSON(value=value, **common)
    if annotation.startswith("bool"):
        return gr.Checkbox(value=bool(value), **common)
    if annotation.startswith("int"):
        return gr.Number(value=value, precision=0, **common)
    if annotation.startswith("float"):
        return gr.Number(value=value, **common)
    if annotation.startswith("str"):
        return gr.Textbox(value=value, **common)
    raise TypeError(f"{param.name}: no API component for annotation {annotation!r}")


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
    if isinstance(like, gr.Slider):
        return gr.Slider(minimum=like.minimum, maximum=like.maximum, step=like.step, **common)
    if isinstance(like, gr.File):
        return gr.File(file_types=like.file_types, type="filepath", visible=False, label=param.name)
    if isinstance(like, gr.Number):
        return gr.Number(minimum=like.minimum, maximum=like.maximum, precision=like.precision, **common)
    raise TypeError(f"{param.name}: cannot mirror a {type(like).__name__}")


def public(
    fn: Callable,
    outputs: list[gr.components.Component],
    *,
    api_name: str,
    files: tuple[str, ...] = (),
    ui_state: tuple[str, ...] = (),
    like: dict[str, gr.components.Component] | None = None,
    concurrency_limit: int | None = 1,
) -> Any:
    """Register `fn` as the public endpoint `api_name`, with fn's signature as its parameters and defaults.

    `like` names UI components whose validation (choices, bounds) a parameter shares: gradio then refuses a value
    outside them with its own message, as it does in the UI."""
    like = like or {}
    inputs = []
    for param in _parameters(fn):
        if param.name in ui_state:
            inputs.append(gr.State(None if param.default is inspect.Parameter.empty else param.default))
        elif param.name in like:
            inputs.append(_mirror(param, like[param.name]))
        else:
            inputs.append(_hidden(param, files))
    trigger = gr.Button(visible=False)
    return trigger.click(fn, inputs, outputs, api_name=api_name, concurrency_limit=concurrency_limit, concurrency_id=api_name)


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


def ui_event(trigger, fn: Callable, given: dict[str, gr.components.Component], outputs, *, api_name: str, **kwargs):
    """The private UI event for `fn` on `trigger` (a listener such as `button.click`), queued with its public twin."""
    return trigger(fn, ui_inputs(fn, given), outputs, api_name=f"{api_name}_from_ui", api_visibility="private", concurrency_limit=1,
                   concurrency_id=api_name, **kwargs)


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
