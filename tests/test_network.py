"""Proxy trust and grant keys: the client address comes from the peer unless the deployment trusts a proxy, and
starting grants count per IPv4 address and per IPv6 /64 (through the launched app, with raw HTTP like an attacker)."""
from __future__ import annotations

import json

import httpx
import pytest

from services.accounts.network import ProxyTrust, Throttle, grant_key
from tests.conftest import launch_app, stop_app


def test_the_peer_is_the_client_unless_a_proxy_is_trusted():
    none = ProxyTrust()
    assert none.client_address("127.0.0.1", "203.0.113.5") == "127.0.0.1"  # loopback is not trusted by default
    listed = ProxyTrust(trusted=("10.0.0.0/8",))
    assert listed.client_address("10.1.2.3", "198.51.100.7") == "198.51.100.7"
    assert listed.client_address("10.1.2.3", "198.51.100.7, 10.9.9.9") == "198.51.100.7"  # trusted hops skipped
    assert listed.client_address("192.0.2.8", "198.51.100.7") == "192.0.2.8"  # not our proxy: header ignored
    assert listed.client_address("10.1.2.3", None) == "10.1.2.3"
    both = ProxyTrust(hops=1, trusted=("127.0.0.1",))
    assert both.client_address("127.0.0.1", "1.2.3.4, 198.51.100.7") == "198.51.100.7"
    assert both.client_address("192.0.2.8", "198.51.100.7") == "192.0.2.8"
    with pytest.raises(ValueError, match="not an IP address"):
        ProxyTrust(trusted=("proxy.example",))


def test_grants_are_keyed_per_ipv4_address_and_ipv6_64():
    assert grant_key("203.0.113.5") == "203.0.113.5"
    assert grant_key("2001:db8:1:2::1") == grant_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert grant_key("2001:db8:1:3::1") != grant_key("2001:db8:1:2::1")
    assert grant_key("::ffff:203.0.113.5") == "203.0.113.5"
    assert grant_key("[2001:db8:1:2::1]:443") == "2001:db8:1:2::/64" and grant_key("203.0.113.5:8080") == "203.0.113.5"


def test_throttle_doubles_the_wait_after_each_failure():
    now = [100.0]
    throttle = Throttle(free=1, base_s=1.0, cap_s=8.0, clock=lambda: now[0])
    assert throttle.wait_s("a") == 0
    throttle.failed("a")  # one free failure
    assert throttle.wait_s("a") == 0
    for expected in (1.0, 2.0, 4.0, 8.0, 8.0):
        throttle.failed("a")
        assert throttle.wait_s("a") == expected
    assert throttle.wait_s("b") == 0
    now[0] += 8.0
    assert throttle.wait_s("a") == 0
    throttle.succeeded("a")
    throttle.failed("a")
    throttle.failed("a")
    assert throttle.wait_s("a") == 1.0


def start(url: str, forwarded: str | None = None, **payload) -> dict:
    """/session_start over raw HTTP (gradio's call API), with an optional X-Forwarded-For header."""
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    data = [payload.get("token", ""), payload.get("admin_key", "")]
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        event = http.post("/gradio_api/call/session_start", json={"data": data}).json()["event_id"]
        body = http.get(f"/gradio_api/call/session_start/{event}").text
    kind = next(line for line in body.splitlines() if line.startswith("event:")).split(":", 1)[1].strip()
    data_line = next(line for line in body.splitlines() if line.startswith("data:"))
    value = json.loads(data_line.split(":", 1)[1])
    return {"event": kind, "value": value[0] if isinstance(value, list) and value else value}


REAL_KEY = "real-key-0123456789abcdefghijklmnopqrstuvwxyz"  # start-up refuses admin secrets under 32 characters


@pytest.mark.parametrize("hops", [0, 1])
def test_forwarded_headers_count_only_behind_a_configured_proxy(tmp_path, tiny_root, hops):
    """20 starts from 127.0.0.1, each claiming another X-Forwarded-For address: without a trusted proxy they share
    one address's grants; with one trusted hop each address gets its own."""
    url, demo, services = launch_app(tmp_path, tiny_root, grants_per_ip=3, proxy_hops=hops, admin_secret=REAL_KEY)
    try:
        granted = [start(url, f"198.51.100.{i}")["value"]["granted"] for i in range(20)]
        if hops == 0:
            assert sum(1 for g in granted if g) == 3, granted
        else:
            assert all(g == 50 for g in granted), granted
            # two addresses in one IPv6 /64 share one limit
            same64 = [start(url, f"2001:db8:5:6::{i:x}")["value"]["granted"] for i in range(1, 6)]
            assert sum(1 for g in same64 if g) == 3, same64
            assert start(url, "2001:db8:5:7::1")["value"]["granted"] == 50  # the next /64 is another network
        # Wrong admin keys are slowed per client network: after three typos the next try is refused unchecked.
        for guess in range(4):
            assert start(url, "203.0.113.77", admin_key=f"guess-{guess}")["event"] == "error"
        assert start(url, "203.0.113.77", admin_key=REAL_KEY)["event"] == "error"
        assert start(url, "203.0.113.78" if hops else None, admin_key=REAL_KEY)["event"] == ("complete" if hops else "error")
    finally:
        stop_app(demo, services)


def test_wrong_admin_keys_from_one_address_never_lock_out_another(tmp_path, tiny_root):
    """50 wrong admin keys from one address slow that address only: the correct key from another address is
    accepted at once (behind one trusted proxy hop, so each X-Forwarded-For address is a client)."""
    url, demo, services = launch_app(tmp_path, tiny_root, proxy_hops=1, admin_secret=REAL_KEY)
    # after the 3 free typos the wait starts at 60 s, not 1 s: on a loaded machine 50 guesses can outlast the short
    # early waits, and the real key would land in a gap between them
    services.identity.admin_throttle.base_s = 60.0
    try:
        for guess in range(50):
            assert start(url, "203.0.113.90", admin_key=f"guess-{guess}")["event"] == "error"
        assert start(url, "203.0.113.90", admin_key=REAL_KEY)["event"] == "error"  # the guessing address waits
        started = start(url, "198.51.100.42", admin_key=REAL_KEY)
        assert started["event"] == "complete" and started["value"]["unlimited"] is True
    finally:
        stop_app(demo, services)


def test_start_up_refuses_a_short_admin_secret(monkeypatch, tmp_path):
    import app as app_module
    from services.config import AppSettings

    with pytest.raises(ValueError, match="31 characters long; .* need at least 32"):
        AppSettings(data_dir=tmp_path, admin_secret="k" * 31)
    AppSettings(data_dir=tmp_path, admin_secret="k" * 32)  # long enough
    monkeypatch.setenv("PLAYGROUND_ADMIN_SECRET", "hunter2")
    with pytest.raises(SystemExit, match="Cannot start: PLAYGROUND_ADMIN_SECRET is 7 characters long"):
        app_module.main(["--data-dir", str(tmp_path)])
