"""The UI's session plumbing: client IPs behind proxies, and what a signed-in page keeps in browser storage."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from services.accounts.network import ProxyTrust
from ui.session import client_ip, optional_account, page_session


def fake_request(host: str, forwarded: str | None = None):
    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    return SimpleNamespace(client=SimpleNamespace(host=host), headers=headers)


def hops(n: int):
    return SimpleNamespace(network=ProxyTrust(hops=n))


def test_client_ip_trusts_only_the_configured_proxies():
    assert client_ip(hops(0), fake_request("10.0.0.2")) == "10.0.0.2"
    # A client can prepend anything to X-Forwarded-For; only the entry our proxy added counts.
    spoofed = fake_request("10.0.0.2", "1.2.3.4, 198.51.100.7")
    assert client_ip(hops(0), spoofed) == "10.0.0.2"
    assert client_ip(hops(1), spoofed) == "198.51.100.7"
    assert client_ip(hops(2), spoofed) == "1.2.3.4"
    assert client_ip(hops(1), fake_request("10.0.0.2")) == "10.0.0.2"
    assert client_ip(hops(1), None) == ""


def test_signed_in_page_keeps_no_member_token_in_browser_storage(make_services):
    services = make_services()
    stored, bar = page_session(services, "", fake_request("192.0.2.1"), None)
    visitor = services.identity.resolve(stored)
    assert visitor.kind == "visitor" and "50 credits" in bar

    profile = gr.OAuthProfile({"sub": "777", "preferred_username": "grace", "name": "Grace", "picture": "", "profile": "", "website": ""})
    kept, bar = page_session(services, stored, fake_request("192.0.2.1"), profile)
    assert kept == "" and "grace" in bar and "250 credits" in bar  # 200 member grant + 50 moved over
    assert optional_account(services, kept, profile).id == "hf-777"
    # Signed out on the same browser: nothing reaches the member account.
    assert optional_account(services, kept, None) is None
    again, _ = page_session(services, kept, fake_request("192.0.2.1"), None)
    assert services.identity.resolve(again).kind == "visitor"
