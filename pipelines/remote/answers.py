"""Sending one request of a remote call and reading its answer: bounded in bytes, its failures turned into the call's
kinds (Busy, Refused, TimedOut, Malformed, Oversized) whichever client sent it (an httpx client of an exchange, or
huggingface_hub's InferenceClient)."""
from __future__ import annotations

import base64
import binascii
import contextlib
import json
from typing import Any, Iterator

import httpx

from .calls import Malformed, Oversized, TimedOut, classify
from .limits import MB, read_limited
from .templates import dig

ERROR_BYTES = 64 * 1024  # what is read of an error answer for its detail


def send(http: httpx.Client, method: str, url: str, headers: dict, limit: int, body: Any = None) -> bytes:
    """One request, its answer streamed and read up to `limit` bytes (the exchange checks the call between chunks)."""
    with http_errors(), http.stream(method, url, headers=headers, json=body) as response:
        raise_for_status(response)
        return read_limited(response, limit)


def raise_for_status(response: httpx.Response) -> None:
    """An answer of 400 or more as Busy or Refused, its detail read from at most ERROR_BYTES of its body."""
    if response.status_code >= 400:
        detail = detail_text(read_limited(response, ERROR_BYTES, truncate=True))
        raise classify(response.status_code, detail, response.headers.get("retry-after"))


@contextlib.contextmanager
def http_errors() -> Iterator[None]:
    """httpx's own failures: a timeout as TimedOut, no answer at all (refused or dropped) as a 503."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TimedOut() from exc
    except httpx.HTTPError as exc:
        raise classify(503, f"cannot connect: {type(exc).__name__}") from exc


@contextlib.contextmanager
def hub_errors() -> Iterator[None]:
    """InferenceClient's failures (huggingface_hub speaks httpx2) as the call's kinds."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except HfHubHTTPError as exc:
        response = exc.response
        status = response.status_code if response is not None else 502
        retry_after = response.headers.get("retry-after") if response is not None else None
        raise classify(status, detail_text(response), retry_after) from exc
    except (httpx.TimeoutException, httpx2.TimeoutException, TimeoutError) as exc:
        raise TimedOut() from exc
    except (httpx.HTTPError, httpx2.HTTPError) as exc:  # no answer at all (connection refused or dropped)
        raise classify(503, f"cannot connect: {type(exc).__name__}") from exc


def fetch(http: httpx.Client, url: str, headers: dict, limit: int) -> bytes:
    if url.startswith("data:"):
        return b64(url.split(",", 1)[-1], limit)
    return send(http, "GET", url, headers, limit)


def as_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise Malformed("the answer is not JSON") from exc


def maybe(data: Any, path: str | None) -> Any:
    if not path:
        return None
    try:
        return dig(data, path)
    except KeyError:
        return None


def detail_text(response) -> str:
    """An error answer's detail: `response` is an httpx/httpx2 response whose body was read, or that body's bytes."""
    if response is None:
        return ""
    raw = response if isinstance(response, bytes) else None
    try:
        data = json.loads(raw) if raw is not None else response.json()
        detail = data.get("detail") or data.get("error") or data.get("message") if isinstance(data, dict) else data
        return str(detail if detail is not None else data)[:300]
    except Exception:
        try:
            return (raw.decode("utf-8", "replace") if raw is not None else response.text or "")[:300]
        except Exception:
            return ""


def b64(value: Any, limit: int) -> bytes:
    text = str(value)
    if len(text) > limit * 4 // 3 + 4:
        raise Oversized(f"more than {limit / MB:g} MB")
    try:
        return base64.b64decode(text, validate=False)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise Malformed("the output is not base64") from exc
