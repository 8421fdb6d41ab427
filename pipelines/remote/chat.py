"""Remote language models (task "chat"): a reply streamed from InferenceClient.chat_completion(stream=True) or from a
vendor's OpenAI-compatible chat API (presets/providers.toml `chat`), under the limits every remote call keeps
(pipelines/remote/calls.py and limits.py): the deadline and Stop end a slow stream at once, a 429 or 5xx is retried
only before the first piece arrived (a retry would repeat what was already shown), the key goes only to its own
origins, and the whole streamed answer is capped in bytes while it arrives. The reply's text is capped too (its token
cap times CHARS_PER_TOKEN): past that it ends there, as a local model's reply ends at its cap.

The pieces are received in the call's worker and handed on, in order, on the thread that runs the request (through
`request.stream` and `on_step(pieces, cap)`), so that none is handed on after Stop or the deadline."""
from __future__ import annotations

import collections
import contextlib
import json
import re
import threading
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..registry import ModelEntry
from ..types import GenerationCancelled, GenerationRequest, GenerationResult, StepCallback, Task, TextCallback
from .answers import http_errors, hub_errors, raise_for_status
from .calls import Busy, Call, Interrupted, Malformed, Refused, classify
from .limits import Exchange, install_hub_guard, origin, serving_hub
from .templates import fill
from .transports import http_providers, transport_of

if TYPE_CHECKING:
    from .backend import RemoteBackend

CHARS_PER_TOKEN = 16  # a reply's text is capped at its token cap times this (a token is rarely longer)
DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE = 400, 0.8  # for an entry without chat settings (the registry requires them)
# What a reply may not carry whatever the provider sends: C0 control characters other than newline and tab.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# OpenAI's chat completions body, for a vendor that declares `chat` without a body.chat template of its own.
OPENAI_BODY = {"model": "{model}", "messages": "{messages}", "max_tokens": "{max_new_tokens}",
               "temperature": "{temperature}", "seed": "{seed}"}


class Reply:
    """A reply as it streams: the worker adds pieces, the thread running the request hands them on in order."""

    def __init__(self, on_text: TextCallback | None, on_step: StepCallback, cap: int, max_chars: int):
        self.on_text, self.on_step, self.cap, self.max_chars = on_text, on_step, cap, max_chars
        self._received: collections.deque[str] = collections.deque()  # appended by the worker, taken by hand_on
        self.count = 0  # pieces received (the worker's count)
        self.chars = 0
        self.truncated = False
        self.pieces: list[str] = []  # pieces handed on
        self.ended = threading.Event()  # the request stopped waiting: an abandoned worker stops reading

    def add(self, piece: str) -> bool:
        """In the worker: one piece of text; False once the reply is full (stop reading)."""
        if self.ended.is_set():
            raise GenerationCancelled("the call has ended")
        piece = _CONTROL.sub("", piece)
        room = self.max_chars - self.chars
        if len(piece) > room:
            piece, self.truncated = piece[:room], True
        if piece:
            self.count += 1
            self.chars += len(piece)
            self._received.append(piece)
        return not self.truncated

    def finish(self) -> None:
        """In the worker, when the stream ended: a stream without any text is not a reply."""
        if not self.count:
            raise Malformed("the stream carried no reply text")

    def hand_on(self) -> None:
        """On the request's thread: the pieces received since the last call, in order, then the progress."""
        handed = False
        while self._received:
            piece = self._received.popleft()
            self.pieces.append(piece)
            handed = True
            if self.on_text is not None:
                self.on_text(piece)
        if handed:
            self.on_step(min(len(self.pieces), self.cap), self.cap)

    @property
    def text(self) -> str:
        return "".join(self.pieces).strip()


def run_chat(backend: "RemoteBackend", entry: ModelEntry, request: GenerationRequest, on_step: StepCallback,
             cancel: threading.Event | None = None) -> GenerationResult:
    key = backend.require_key(entry)
    label = backend.label(entry)
    model = entry.remote_model_for(Task.CHAT)
    own = entry.chat
    cap = int(request.max_new_tokens or (own.max_new_tokens if own else DEFAULT_MAX_NEW_TOKENS))
    temperature = float(request.temperature if request.temperature is not None else
                        own.temperature if own else DEFAULT_TEMPERATURE)
    client = transport_of(entry.provider or "") == "client"
    # InferenceClient maps a hub id to the provider's name itself; a vendor's own names are in presets/providers.toml
    sent = model if client else http_providers()[entry.provider or ""].models.get(model, model)
    values = {"model": sent, "messages": [{"role": role, "content": content} for role, content in request.messages],
              "max_new_tokens": cap, "temperature": temperature, "seed": request.seed, "prompt": request.prompt}
    settings = backend.settings
    call = Call(label, settings.timeout_s, settings.retries, settings.backoff_s, cancel)
    stream = _client_stream if client else _vendor_stream
    reply: Reply | None = None

    def attempt() -> None:
        nonlocal reply
        reply = Reply(request.stream, on_step, cap, cap * CHARS_PER_TOKEN)
        try:
            call.in_thread(lambda: stream(backend, call, key, entry, values, reply), on_tick=reply.hand_on)
        except Busy as exc:
            if reply.count:  # pieces went out already: a retry would repeat them
                raise Interrupted(str(exc)) from exc
            raise
        finally:
            reply.ended.set()

    on_step(0, cap)
    call.run(attempt)
    assert reply is not None
    parameters = {
        "prompt": request.prompt, "messages": len(request.messages), "reply_tokens": len(reply.pieces),
        "max_new_tokens": cap, "temperature": temperature, "seed": request.seed, "count": 1,
        "provider": entry.provider, "provider_name": label, "remote_model": model, "attempts": call.attempts,
        "transport": "InferenceClient" if client else "http",
    }
    if sent != model:
        parameters["provider_model"] = sent
    if reply.truncated:
        parameters["truncated"] = True  # the provider went past the reply's cap; the reply ends there
    return GenerationResult(seeds=[request.seed], parameters=parameters, texts=[reply.text])


# -- InferenceClient.chat_completion ---------------------------------------------------------------------------------
def _client_stream(backend: "RemoteBackend", call: Call, key: str, entry: ModelEntry, values: dict[str, Any],
                   reply: Reply) -> None:
    """In the call's worker: huggingface_hub's requests (its shared session) held to an exchange that streams (no
    spooling), capped at max_chat_bytes, the token only for the router, the Hub (and a provider's own API with its
    own key)."""
    install_hub_guard()  # already done at start-up unless someone replaced the factory since
    exchange = Exchange(call, backend.policy, backend.settings.max_chat_bytes, backend.hub_origins(key, entry, Task.CHAT),
                        frozenset({"authorization"}), backend.settings.request_timeout_s)
    client = backend.inference_client(key, entry.provider or "")
    try:
        with serving_hub(exchange), _malformed(), hub_errors(), _stream_errors():
            chunks = client.chat_completion(
                values["messages"], model=values["model"], stream=True, max_tokens=values["max_new_tokens"],
                temperature=values["temperature"], seed=values["seed"], extra_body=dict(entry.remote_params) or None)
            for chunk in chunks:
                call.check()
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece and not reply.add(piece):
                    break
    finally:
        client.close()  # the streamed answer's connection (InferenceClient keeps it open until then)
    reply.finish()


@contextlib.contextmanager
def _stream_errors() -> Iterator[None]:
    """An error event inside InferenceClient's stream (huggingface_hub raises it as a TextGenerationError)."""
    from huggingface_hub.errors import OverloadedError, TextGenerationError, ValidationError

    try:
        yield
    except OverloadedError as exc:
        raise Busy(503, str(exc)[:300]) from exc
    except ValidationError as exc:
        raise Refused(422, str(exc)[:300]) from exc
    except TextGenerationError as exc:
        raise classify(500, str(exc)[:300]) from exc


@contextlib.contextmanager
def _malformed() -> Iterator[None]:
    """A chunk that is not JSON, or JSON without the chunk's shape."""
    try:
        yield
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise Malformed(f"a stream chunk that does not parse ({type(exc).__name__})") from exc


# -- an OpenAI-compatible vendor (presets/providers.toml) ------------------------------------------------------------
def _vendor_stream(backend: "RemoteBackend", call: Call, key: str, entry: ModelEntry, values: dict[str, Any],
                   reply: Reply) -> None:
    """In the call's worker: POST {base_url}/chat/completions with stream on, its Server-Sent Events read as they
    arrive; the key header only for the base URL's origin (a redirect elsewhere goes without it)."""
    vendor = http_providers()[entry.provider or ""]
    assert vendor.chat is not None  # the registry refuses chat entries on vendors without a chat API
    base_url = backend.settings.base_urls.get(vendor.id, vendor.base_url).rstrip("/")
    headers = {vendor.auth_header: vendor.auth_value.format(key=key), "Accept": "text/event-stream"}
    body = fill(entry.remote_body or vendor.body.get(Task.CHAT) or OPENAI_BODY, values)
    body.update(entry.remote_params)
    body["stream"] = True  # whatever a template says: the answer is read as a stream
    url = vendor.chat.submit.format(base_url=base_url, model=values["model"])
    exchange = Exchange(call, backend.policy, backend.settings.max_chat_bytes, frozenset({origin(base_url)}),
                        frozenset({vendor.auth_header.lower()}), backend.settings.request_timeout_s)
    with exchange.client() as http, http_errors(), http.stream("POST", url, headers=headers, json=body) as response:
        raise_for_status(response)
        for piece in sse_pieces(response.iter_lines()):
            if not reply.add(piece):
                break
    reply.finish()


def sse_pieces(lines: Iterable[str]) -> Iterator[str]:
    """The reply's pieces from an OpenAI-style event stream: `data: {chunk}` lines up to `data: [DONE]`, each
    chunk's choices.0.delta.content. Other lines (comments, event names, the blank line after each event) carry
    nothing; an `error` event ends the stream as the provider's failure."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise Malformed("a stream chunk that is not JSON") from exc
        if not isinstance(chunk, dict):
            raise Malformed("a stream chunk that is not a JSON object")
        if chunk.get("error") is not None:
            raise _error_event(chunk["error"])
        piece = _delta(chunk)
        if piece:
            yield piece


def _delta(chunk: dict) -> str | None:
    choices = chunk.get("choices") or []
    first = choices[0] if isinstance(choices, list) and choices else None
    delta = first.get("delta") if isinstance(first, dict) else None
    piece = delta.get("content") if isinstance(delta, dict) else None
    if piece is not None and not isinstance(piece, str):
        raise Malformed("a stream chunk whose content is not text")
    return piece


def _error_event(error: Any) -> Exception:
    """An error event's status (its `code` when that is an HTTP status, else 500) and message."""
    message = error.get("message") if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    status = int(code) if isinstance(code, (int, str)) and str(code).isdigit() and 400 <= int(code) < 600 else 500
    return classify(status, str(message or "")[:300])
