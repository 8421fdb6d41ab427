"""The remote backend keeps its promises against the local fake provider (tests/fake_provider.py, 127.0.0.1 only):
the deadline and Stop end a slowly dripping body; the deployer's key goes only to the configured origin; a 400 MB
body, a gzip bomb and a 144 MP PNG are refused from what streams in or from their header, refunded, and never held in
memory; output URLs at the app itself or at loopback/private addresses are refused unless allow-listed (the fake
itself is reachable only because the tests allow-list it)."""
from __future__ import annotations

import threading
import time
import tracemalloc

import httpx
import pytest

from pipelines.remote import RemoteBackend, RemoteSettings
from pipelines.remote import limits
from pipelines.remote.backend import decode_image, decode_video
from pipelines.remote.calls import Call, Oversized, Unsafe
from pipelines.remote.limits import MB, AddressPolicy, Exchange, GuardedTransport, is_public, origin, parse_hosts
from services.errors import Cancelled, UserError

from .fake_provider import HUGE_BYTES, png_header_only, video_bytes
from .test_remote import balance, db_url, fake, paid, rich_account, services, settings_for, stored_files  # noqa: F401

VENDOR_IMAGE = ("flux.2-pro", "text-to-image")  # fal's own queue API (the data-driven HTTP transport)
CLIENT_IMAGE = ("hunyuan-image-3", "text-to-image")  # InferenceClient through the (fake) router, fal-ai
VENDOR_VIDEO = ("kling-2.6-pro", "text-to-video")
CLIENT_VIDEO = ("client-t2v", "text-to-video")
GEMINI_IMAGE = ("nano-banana-2", "text-to-image")  # base64 inside the JSON answer
PATHS = {"http-vendor": VENDOR_IMAGE, "inference-client": CLIENT_IMAGE}
MEMORY_BOUND = 100 * MB


def use(preview_runtime, monkeypatch, fake, **overrides) -> RemoteBackend:
    backend = RemoteBackend(settings_for(fake, **overrides))
    monkeypatch.setattr(preview_runtime, "remote", backend)
    return backend


def refused(services, account, model: str, task: str) -> str:
    with pytest.raises(UserError) as caught:
        paid(services, account, model, task)
    return str(caught.value)


def assert_refunded(services, account, before: int, files_before: list) -> None:
    assert balance(services, account) == before == services.ledger.total(account.id)
    assert stored_files(services) == files_before
    assert [e["kind"] for e in services.ledger.entries(account.id)][:2] == ["refund", "reserve"]


def port_of(url: str) -> int:
    return httpx.URL(url).port


def headers_of(record: dict) -> dict:
    return {k.lower(): v for k, v in record["headers"].items()}


# -- time: the deadline and Stop hold for the whole exchange ---------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
def test_a_dripping_body_ends_at_the_deadline_and_is_refunded(services, fake, preview_runtime, monkeypatch, path):
    use(preview_runtime, monkeypatch, fake, timeout_s=5)
    account = rich_account(services)
    before, files_before = balance(services, account), stored_files(services)
    fake.reset("drip")  # the output file sends one byte every 2 s
    start = time.monotonic()
    text = refused(services, account, *PATHS[path])
    elapsed = time.monotonic() - start
    assert fake.dripping.is_set() and fake.streamed >= 1  # the body really was dripping when the deadline came
    assert "did not finish within 5 seconds" in text and "refunded" in text
    assert elapsed < 5 + 2, elapsed
    assert_refunded(services, account, before, files_before)


@pytest.mark.parametrize("path", PATHS)
def test_stop_during_a_dripping_body_refunds_within_two_seconds(services, fake, preview_runtime, monkeypatch, path):
    use(preview_runtime, monkeypatch, fake, timeout_s=60)
    account = rich_account(services)
    before = balance(services, account)
    fake.reset("drip")
    stopped: dict[str, float] = {}

    def stop() -> None:
        if fake.dripping.wait(30):
            time.sleep(0.5)  # a byte into the body, waiting for the next
            stopped["at"] = time.monotonic()
            services.runner.cancel(account)

    stopper = threading.Thread(target=stop)
    stopper.start()
    with pytest.raises(Cancelled):
        paid(services, account, *PATHS[path])
    ended = time.monotonic()
    stopper.join()
    assert "at" in stopped, "the body never started dripping"
    assert ended - stopped["at"] < 2.0, ended - stopped["at"]
    assert balance(services, account) == before == services.ledger.total(account.id)


# -- keys: only the configured origin gets the deployer's key -------------------------------------------------------
@pytest.mark.parametrize("where", ["another port", "another host"])
def test_status_and_result_urls_on_another_origin_never_get_the_key(services, fake, preview_runtime, monkeypatch, where):
    other = fake.add_origin() if where == "another port" else fake.url.replace("127.0.0.1", "localhost")
    use(preview_runtime, monkeypatch, fake, allow_hosts=(fake.url, other))  # both reachable: only the key differs
    account = rich_account(services)
    fake.reset()
    fake.queue_url = other  # the submit answer's status_url, response_url and cancel_url point there

    def on_other(record: dict) -> bool:
        if where == "another port":
            return record["server"] == port_of(other)
        return headers_of(record).get("host", "").startswith("localhost")

    _, output = paid(services, account, *VENDOR_IMAGE)
    assert len(output.files) == 1
    elsewhere = [r for r in fake.requests if on_other(r)]
    assert any(r["path"].endswith("/status") for r in elsewhere) and any(r["method"] == "GET" and not r["path"].endswith("/status") for r in elsewhere)
    assert all("authorization" not in headers_of(r) for r in elsewhere), [headers_of(r) for r in elsewhere]
    [submit] = [r for r in fake.requests if r["method"] == "POST"]
    assert not on_other(submit) and headers_of(submit)["authorization"] == "Key fal-deployer-key"


def test_a_cancel_url_on_another_origin_gets_the_put_without_the_key(services, fake, preview_runtime, monkeypatch):
    other = fake.add_origin()
    use(preview_runtime, monkeypatch, fake, timeout_s=30, allow_hosts=(fake.url, other))
    account = rich_account(services)
    before = balance(services, account)
    fake.reset("timeout")  # the job never finishes by itself
    fake.queue_url = other
    timer = threading.Timer(0.8, lambda: services.runner.cancel(account))
    timer.start()
    with pytest.raises(Cancelled):
        paid(services, account, *VENDOR_VIDEO)
    timer.join()
    assert balance(services, account) == before
    [put] = [r for r in fake.requests if r["method"] == "PUT"]
    assert put["server"] == port_of(other) and "authorization" not in headers_of(put)
    assert len(fake.cancelled) == 1


def test_a_status_url_on_an_origin_not_allowed_is_refused_and_never_fetched(services, fake, preview_runtime, monkeypatch):
    other = fake.add_origin()
    use(preview_runtime, monkeypatch, fake)  # only the fake's own origin is allow-listed
    account = rich_account(services)
    before, files_before = balance(services, account), stored_files(services)
    fake.reset()
    fake.queue_url = other
    text = refused(services, account, *VENDOR_IMAGE)
    assert "does not fetch from" in text and "refunded" in text
    assert not [r for r in fake.requests if r["server"] == port_of(other)]
    assert_refunded(services, account, before, files_before)


def test_the_key_header_is_dropped_for_other_schemes_ports_and_redirects():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("x-goog-api-key")))
        if request.url.path == "/hop":
            return httpx.Response(302, headers={"Location": "http://127.0.0.1:9/landing"})
        return httpx.Response(200, json={})

    exchange = Exchange(Call("test", 10, 0, 0), AddressPolicy(parse_hosts("127.0.0.1")), MB,
                        frozenset({origin("http://127.0.0.1:8")}), frozenset({"x-goog-api-key"}))
    with httpx.Client(transport=GuardedTransport(httpx.MockTransport(handler), lambda: exchange), follow_redirects=True) as http:
        http.get("http://127.0.0.1:8/hop", headers={"x-goog-api-key": "k"})
        http.get("https://127.0.0.1:8/other-scheme", headers={"x-goog-api-key": "k"})
        http.get("http://127.0.0.1:8/same", headers={"x-goog-api-key": "k"})
    assert seen == [("http://127.0.0.1:8/hop", "k"), ("http://127.0.0.1:9/landing", None),
                    ("https://127.0.0.1:8/other-scheme", None), ("http://127.0.0.1:8/same", "k")]


def test_origins_compare_scheme_host_and_port():
    assert origin("https://Queue.example/a") == origin("https://queue.example:443/b") == ("https", "queue.example", 443)
    assert origin("http://queue.example") != origin("https://queue.example")
    assert origin("https://queue.example:8443") != origin("https://queue.example")
    assert origin("https://cdn.queue.example") != origin("https://queue.example")


# -- bytes and pixels: refused while streaming or from the header, never held --------------------------------------
HUGE_CASES = [(mode, *case) for mode in ("huge", "gzip-bomb") for case in (VENDOR_IMAGE, VENDOR_VIDEO, CLIENT_IMAGE, CLIENT_VIDEO)]
HUGE_CASES += [("huge-declared", *VENDOR_IMAGE), ("huge-declared", *CLIENT_VIDEO)]


@pytest.mark.parametrize("mode,model,task", HUGE_CASES)
def test_a_400_mb_body_is_refused_and_refunded_without_being_held(services, fake, preview_runtime, monkeypatch, mode, model, task):
    use(preview_runtime, monkeypatch, fake, timeout_s=60)
    account = rich_account(services)
    before, files_before = balance(services, account), stored_files(services)
    fake.reset(mode)
    tracemalloc.start()
    try:
        text = refused(services, account, model, task)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "larger than this deployment accepts" in text and "refunded" in text, text
    assert peak < MEMORY_BOUND, f"peak {peak / MB:.0f} MB"
    assert fake.streamed < HUGE_BYTES  # the rest was never even sent
    assert_refunded(services, account, before, files_before)


@pytest.mark.parametrize("model,task", [VENDOR_IMAGE, CLIENT_IMAGE, GEMINI_IMAGE])
def test_a_144_megapixel_png_is_refused_from_its_header(services, fake, preview_runtime, monkeypatch, model, task):
    use(preview_runtime, monkeypatch, fake)
    account = rich_account(services)
    before, files_before = balance(services, account), stored_files(services)
    fake.reset("huge-png")  # IHDR says 12000x12000; decoding would allocate 432 MB
    tracemalloc.start()
    try:
        text = refused(services, account, model, task)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "144 megapixels (12000×12000)" in text and "the limit is 40" in text and "refunded" in text, text
    assert peak < MEMORY_BOUND, f"peak {peak / MB:.0f} MB"
    assert_refunded(services, account, before, files_before)


def test_decode_image_reads_the_pixel_count_before_decoding():
    tracemalloc.start()
    try:
        with pytest.raises(Oversized, match="144 megapixels"):
            decode_image(png_header_only(12000, 12000), 1024, 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * MB


def test_decode_video_is_bounded_by_its_container_probe():
    data = video_bytes(64, 48, frames=12)
    assert len(decode_video(data, 64, 48)) == 12
    with pytest.raises(Oversized, match="megapixels"):
        decode_video(data, 64, 48, max_pixels=1000)
    with pytest.raises(Oversized, match="frames"):
        decode_video(data, 64, 48, max_video_pixels=64 * 48 * 5)


# -- addresses: the app itself, loopback and private ranges need the deployer's allow-list --------------------------
@pytest.mark.parametrize("path", PATHS)
def test_an_output_url_at_the_app_itself_is_refused(services, fake, preview_runtime, monkeypatch, path):
    app_url = fake.add_origin()  # stands in for the app: a loopback port the deployer did not allow-list
    use(preview_runtime, monkeypatch, fake)
    account = rich_account(services)
    before, files_before = balance(services, account), stored_files(services)
    fake.reset()
    fake.files_url = app_url
    text = refused(services, account, *PATHS[path])
    assert "does not fetch from" in text and "refunded" in text, text
    assert not [r for r in fake.requests if r["server"] == port_of(app_url)]
    assert_refunded(services, account, before, files_before)


@pytest.mark.parametrize("base", ["http://10.1.2.3", "http://192.168.0.10:8080", "http://169.254.169.254",
                                  "http://100.64.0.1", "http://0.0.0.0:{port}", "http://[::1]:{port}",
                                  "http://[::ffff:127.0.0.1]:{port}", "http://localhost:{port}", "file://", "ftp://10.0.0.1"])
def test_output_urls_at_loopback_or_private_addresses_are_refused(services, fake, preview_runtime, monkeypatch, only_loopback, base):
    use(preview_runtime, monkeypatch, fake)  # 127.0.0.1:<port> is allowed; none of these names it
    account = rich_account(services)
    before, files_before = balance(services, account), stored_files(services)
    attempts = list(only_loopback)
    fake.reset()
    fake.files_url = base.format(port=port_of(fake.url))
    text = refused(services, account, *VENDOR_IMAGE)
    assert "does not fetch from" in text and "refunded" in text, text
    assert only_loopback == attempts  # nothing was even dialled
    assert not [r for r in fake.requests if r["path"].startswith("/files/")]
    assert_refunded(services, account, before, files_before)


def test_the_apps_own_public_host_is_refused_without_resolving_it(services, fake, preview_runtime, monkeypatch):
    use(preview_runtime, monkeypatch, fake, self_hosts="playground-demo.hf.space")

    def no_dns(host, port):
        raise AssertionError(f"resolved {host}")

    monkeypatch.setattr(limits, "resolve", no_dns)
    account = rich_account(services)
    fake.reset()
    fake.files_url = "https://playground-demo.hf.space"
    text = refused(services, account, *VENDOR_IMAGE)
    assert "does not fetch from" in text and "this app itself" in text


def test_a_name_is_checked_again_on_the_address_actually_dialled(fake, monkeypatch):
    """DNS rebinding: the name resolves to a public address for the URL check and to loopback at connect time; the
    connection is refused and the loopback server never hears of it."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    monkeypatch.setattr(limits, "resolve", lambda host, port: next(answers))
    fake.reset()
    exchange = Exchange(Call("test", 10, 0, 0), AddressPolicy(), MB)
    with exchange.client() as http, pytest.raises(Unsafe):
        http.get(f"http://rebind.example.test:{port_of(fake.url)}/api/models/x")
    assert fake.requests == []


def test_the_checked_address_is_the_one_dialled(fake, monkeypatch):
    """The connection goes to the address that was checked (here 127.0.0.1, taken as public for the test), not to
    whatever the system resolver would answer for the name (which cannot resolve this name at all)."""
    monkeypatch.setattr(limits, "resolve", lambda host, port: ["127.0.0.1"])
    monkeypatch.setattr(limits, "is_public", lambda address: True)
    fake.reset()
    exchange = Exchange(Call("test", 10, 0, 0), AddressPolicy(), MB)
    with exchange.client() as http:
        answer = http.get(f"http://pinned.example.test:{port_of(fake.url)}/api/models/unknown")
    assert answer.status_code == 404
    [seen] = fake.requests
    assert headers_of(seen)["host"] == f"pinned.example.test:{port_of(fake.url)}"


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("::ffff:8.8.8.8", True), ("127.0.0.1", False),
    ("10.0.0.1", False), ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False),
    ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False), ("240.0.0.1", False), ("::1", False),
    ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False), ("::", False)])
def test_which_addresses_count_as_public(address, public):
    assert is_public(address) is public


def test_allow_list_entries_name_a_host_or_a_host_and_port():
    policy = AddressPolicy(parse_hosts(" Proxy.internal:8080, 10.0.0.5 ,[::1]:9000, http://127.0.0.1:7000/ "))
    assert policy.listed("proxy.internal", 8080) and not policy.listed("proxy.internal", 8081)
    assert policy.listed("10.0.0.5", 443) and policy.listed("::1", 9000) and not policy.listed("::1", 9001)
    assert policy.listed("127.0.0.1", 7000) and not policy.listed("localhost", 7000)


def test_settings_come_from_the_environment_and_match_the_upload_bound():
    from services.safety.policy import load_safety_file

    default = RemoteSettings.from_env({})
    assert default.allow_hosts == frozenset() and default.self_hosts == frozenset()
    assert (default.max_image_bytes, default.max_video_bytes) == (50 * MB, 200 * MB)
    assert default.max_pixels == load_safety_file().uploads.max_pixels == 40_000_000
    custom = RemoteSettings.from_env({"PLAYGROUND_REMOTE_ALLOW_HOSTS": "proxy.internal:8080, 10.0.0.5",
                                      "SPACE_HOST": "me-playground.hf.space", "PLAYGROUND_REMOTE_MAX_IMAGE_MB": "20",
                                      "PLAYGROUND_REMOTE_MAX_VIDEO_MB": "150"})
    assert custom.allow_hosts == {"proxy.internal:8080", "10.0.0.5"} and custom.self_hosts == {"me-playground.hf.space"}
    assert (custom.max_image_bytes, custom.max_video_bytes) == (20 * MB, 150 * MB)
