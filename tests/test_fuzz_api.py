"""Property-based fuzzing of every public endpoint, as an outsider would call it: random types and values (huge and
negative integers, NaN and infinities, non-ASCII and control characters, wrong types, empty and oversized strings and
lists) sent over gradio's HTTP call API. For every call: an internal exception never reaches the caller (no bare
error, no "Generation failed (TypeError)"), a refusal charges nothing, and /history still loads for that visitor.
Examples are derandomized, so CI runs the same bounded set every time."""
from __future__ import annotations

import json
import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_KEY

EXAMPLES_PER_ENDPOINT = 7  # 52 endpoints: keeps the suite under 20 minutes on 2 cores
INTERNAL = re.compile(r"Generation failed \(|Traceback|\b(TypeError|KeyError|AttributeError|OverflowError|IndexError|"
                      r"ValueError|RuntimeError|ZeroDivisionError|JSONDecodeError)\b")

junk_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80),
    st.sampled_from(["", " ", "\x00", "\u202e", "\u00ad", "🌸" * 50, "x" * 30_000, "../../etc/passwd", "%00", "NaN"]),
)
junk_number = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([-(2**64), 2**63, -1, 0, 2**32, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalar = st.one_of(junk_text, junk_number, st.booleans(), st.none())
junk = st.one_of(scalar, st.lists(scalar, max_size=12), st.dictionaries(st.text(max_size=8), scalar, max_size=6))


def call(http: httpx.Client, name: str, data: list) -> tuple[str, object]:
    """One call over gradio's HTTP API: (event, data). NaN and infinities are sent as the JSON literals a raw
    client can write."""
    body = json.dumps({"data": data}, allow_nan=True)
    posted = http.post(f"/gradio_api/call/{name}", content=body, headers={"Content-Type": "application/json"})
    if posted.status_code != 200:
        return "rejected", posted.text
    stream = http.get(f"/gradio_api/call/{name}/{posted.json()['event_id']}").text
    events = [line.split(":", 1)[1].strip() for line in stream.splitlines() if line.startswith("event:")]
    datas = [line.split(":", 1)[1].strip() for line in stream.splitlines() if line.startswith("data:")]
    if not events:
        return "rejected", stream
    raw = datas[-1] if datas else "null"
    return events[-1], (json.loads(raw) if raw not in ("", "null") else None)


@pytest.fixture(scope="module")
def surface(app_server, client):
    url, services = app_server
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    token = client.predict(api_name="/session_start")["token"]
    qa = client.predict(admin_key=ADMIN_KEY, api_name="/session_start")["token"]
    account = services.identity.resolve(token)
    with services.db.begin() as conn:
        services.ledger.adjust(conn, account.id, 500, "test", "fuzzing credits")
    http = httpx.Client(base_url=url, timeout=120)
    yield api, token, qa, services, account, http
    http.close()


def _endpoints():
    from tests.test_api_surface import readme_endpoints

    return list(readme_endpoints())


@pytest.mark.parametrize("name", _endpoints())
def test_fuzzing_an_endpoint_finds_nothing(surface, name):
    api, token, qa, services, account, http = surface
    params = api[name]["parameters"]

    def value_for(p):
        default = p["parameter_default"] if p["parameter_has_default"] else None
        if p["parameter_name"] == "token":
            return st.one_of(st.just(token), st.just(qa), junk)
        if p["component"] == "File":
            return st.one_of(st.none(), junk_text, junk_number)
        return st.one_of(st.just(default), junk)

    @settings(max_examples=EXAMPLES_PER_ENDPOINT, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.tuples(*[value_for(p) for p in params]) if params else st.just(()))
    def fuzz(values):
        before = services.ledger.balance(account.id)
        event, data = call(http, name.lstrip("/"), list(values))
        shown = json.dumps(data, default=str)
        assert event in ("complete", "error", "rejected"), (name, values, event)
        if event == "error":
            assert data is not None, f"{name} raised an unhandled exception for {values!r}"
            assert not INTERNAL.search(shown), f"{name} leaked an internal error for {values!r}: {shown}"
            assert services.ledger.balance(account.id) == before, f"{name} charged for a refusal: {values!r}"
        elif event == "rejected":
            assert services.ledger.balance(account.id) == before

    fuzz()
    event, history = call(http, "history", [token, 20])
    assert event == "complete" and isinstance(history, list), history
