"""Chat completions for the fake provider (tests/fake_provider.py), streamed as OpenAI-compatible servers stream them:
Server-Sent Events of `chat.completion.chunk` objects, then `data: [DONE]`. The same answer serves the Inference
Providers router's routes (POST {router}/{provider}/v1/chat/completions, novita's /v3/openai/chat/completions) and an
OpenAI-compatible vendor's POST {base_url}/chat/completions.

Modes (the fake's `mode`): "ok" streams REPLY piece by piece; "slow" sends its first piece, then one more every 2 s
forever; "huge" is an endless stream of chunks without text (bytes, no reply); "endless-text" an endless stream of
text; "malformed" one good chunk, then a data line that is not JSON; "drop" three pieces, then the connection closes
mid-body (no end of the chunked body, no [DONE]); "redirect" answers the first origin's POST with
307 to the fake's `redirect_url` (another origin), which streams "ok". "error" and "429-then-ok" are answered before
this (fake_provider.py), as for every other POST."""
from __future__ import annotations

import itertools
import json
import threading
import uuid
from typing import Iterator

REPLY = ("Hello", ",", " traveller", ".", " The", " light", " is", " steady", " tonight", ".")
SLOW_FIRST = "Let me think"


def chunk(content: str | None, finish: str | None = None, model: str = "fake-chat", cid: str = "chatcmpl-fake") -> bytes:
    delta = {} if content is None else {"role": "assistant", "content": content}
    event = {"id": cid, "object": "chat.completion.chunk", "created": 1_760_000_000, "model": model,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def events(mode: str, model: str, closing: threading.Event) -> Iterator[bytes]:
    cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    if mode == "slow":
        yield chunk(SLOW_FIRST, model=model, cid=cid)
        while not closing.wait(2.0):
            yield chunk(" and think", model=model, cid=cid)
        return
    if mode == "huge":
        for _ in itertools.count():
            yield chunk("", model=model, cid=cid) * 64  # about 12 KB of chunks without a character of text
    if mode == "endless-text":
        for _ in itertools.count():
            yield chunk("on and on ", model=model, cid=cid)
    if mode == "malformed":
        yield chunk(REPLY[0], model=model, cid=cid)
        yield b"data: {\"choices\": [{\"delta\": {\"content\": \"trunc\n\n"
        yield DONE
        return
    for piece in REPLY[:3] if mode == "drop" else REPLY:
        yield chunk(piece, model=model, cid=cid)
    if mode == "drop":
        raise ConnectionResetError("the provider dropped the stream")  # the handler closes the connection mid-body
    yield chunk(None, finish="stop", model=model, cid=cid)
    yield DONE


def serve(handler, fake, body: dict) -> None:
    """Answer one chat completions POST on `handler` (the fake's request handler)."""
    if fake.mode == "redirect" and fake.redirect_url and handler.server is fake.server:
        handler.send_response(307)
        handler.send_header("Location", f"{fake.redirect_url}{handler.path}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return
    if not isinstance(body.get("messages"), list) or not body.get("stream"):
        return handler._send(422, {"error": {"message": "messages and stream are required", "type": "invalid_request_error"}})
    mode = "ok" if fake.mode == "redirect" else fake.mode
    stream = {"mode": mode, "bytes": 0, "ended": threading.Event()}
    fake.chat_streams.append(stream)

    def counted() -> Iterator[bytes]:
        for data in events(mode, str(body.get("model")), fake._closing):
            yield data
            stream["bytes"] += len(data)

    try:
        handler._stream(counted(), "text/event-stream")  # ends when the stream does or the client hangs up
    finally:
        stream["ended"].set()
