"""MCP (`python app.py --mcp`, GRADIO_MCP_SERVER=True): gradio serves the public endpoints as MCP tools at
/gradio_api/mcp/ (streamable HTTP). The tool set is exactly README's endpoint table, each tool has the endpoint's
docstring and parameters, the visitor token is an argument (no session state), and files come back as URLs."""
from __future__ import annotations

import ast
import asyncio
import io
import re

import httpx
import pytest

from tests.conftest import launch_app, stop_app
from tests.test_api_surface import readme_endpoints

pytest.importorskip("mcp")


@pytest.fixture(scope="module")
def mcp_app(tmp_path_factory, tiny_root):
    url, demo, services = launch_app(tmp_path_factory.mktemp("mcp-data"), tiny_root, mcp_server=True)
    try:
        yield url, demo, services
    finally:
        stop_app(demo, services)


async def _session(url: str, work):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(f"{url}/gradio_api/mcp/") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)


def mcp(url: str, work):
    return asyncio.run(_session(url, work))


def _text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def _value(result):
    """gradio sends a JSON output as the Python repr of the value."""
    assert not result.isError, _text(result)
    return ast.literal_eval(result.content[0].text)


@pytest.fixture(scope="module")
def tools(mcp_app):
    url, _, _ = mcp_app

    async def work(session):
        return (await session.list_tools()).tools

    return {tool.name: tool for tool in mcp(url, work)}


def test_the_tools_are_exactly_the_readme_endpoints(mcp_app, tools):
    from gradio import utils

    url, demo, _ = mcp_app
    documented = readme_endpoints()
    assert sorted(tools) == sorted(name.lstrip("/") for name in documented), "MCP tools and README's API table differ"
    # gradio's own map (the schema route the Hub reads) agrees: each tool is the endpoint of the same name
    schema = httpx.get(f"{url}/gradio_api/mcp/schema", timeout=30).json()
    assert {s["name"]: s["meta"]["endpoint_name"] for s in schema} == {name: name for name in tools}
    api = demo.get_api_info()["named_endpoints"]
    for name, tool in tools.items():
        params = [p["parameter_name"] for p in api[f"/{name}"]["parameters"]]
        assert list(tool.inputSchema["properties"]) == params, f"{name}: the tool's parameters are not the endpoint's"
        assert set(tool.inputSchema.get("required", [])) <= set(documented[f"/{name}"])
        assert tool.description.strip(), f"{name} has no description"
        block_fn = next(f for f in demo.fns.values() if f.api_name == name)
        docstring, _, _ = utils.get_function_description(block_fn.fn)
        assert tool.description.startswith(docstring.strip()), f"{name}: the description is not its docstring"
        for param, spec in tool.inputSchema["properties"].items():
            assert spec.get("description"), f"{name}.{param} has no description in the tool schema"


def test_no_tool_keeps_session_state_the_token_is_an_argument(mcp_app, tools):
    import gradio as gr

    _, demo, _ = mcp_app
    for name in tools:
        block_fn = next(f for f in demo.fns.values() if f.api_name == name)
        # UI-only state (ui.api.public's ui_state, e.g. figure_quick's draft) is not a tool argument: gradio passes
        # None for it on every call (its startup warning says so), which is the function's default
        states = [c for c in block_fn.inputs if isinstance(c, gr.State)]
        assert all(c.value is None for c in states), f"{name}: a session-state input holds a value between calls"
    with_token = {name for name, required in readme_endpoints().items() if "token" in required}
    assert with_token, "README marks no endpoint as needing a token"
    for name in with_token:
        assert "token" in tools[name.lstrip("/")].inputSchema["properties"]


def test_text_to_image_over_mcp_returns_a_png_url_and_charges_the_quoted_price(mcp_app, tools):
    from PIL import Image

    url, _, _ = mcp_app

    async def work(session):
        token = _value(await session.call_tool("session_start", {}))["token"]
        before = _value(await session.call_tool("balance", {"token": token}))["balance"]
        quote = _value(await session.call_tool("quote", {"token": token, "model": "sdxl-base", "aspect_ratio": "3:4"}))
        made = await session.call_tool("text_to_image", {"token": token, "prompt": "a lighthouse at dusk", "model": "sdxl-base",
                                                         "aspect_ratio": "3:4"})
        after = _value(await session.call_tool("balance", {"token": token}))["balance"]
        return before, quote, made, after

    before, quote, made, after = mcp(url, work)
    assert not made.isError, _text(made)
    text = _text(made)
    urls = re.findall(r"'url': '(http://127\.0\.0\.1:\d+/gradio_api/file=[^']+\.png)'", text)
    assert urls, f"no image URL in the result: {text[:600]}"
    response = httpx.get(urls[0], timeout=30)
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    width, height = image.size
    assert abs(width / height - 3 / 4) < 0.05, f"asked for 3:4, got {image.size}"
    match = re.search(r"'width': (\d+), 'height': (\d+)", text)
    assert match, f"no size in the result: {text[:1500]}"
    assert (width, height) == (int(match.group(1)), int(match.group(2)))
    assert before - after == quote["total"] > 0, f"charged {before - after}, quoted {quote['total']}"


def test_a_tool_call_without_a_token_gets_the_apps_own_message(mcp_app, tools):
    url, _, _ = mcp_app

    async def work(session):
        return (await session.call_tool("balance", {}),
                await session.call_tool("text_to_image", {"prompt": "a lighthouse", "model": "sdxl-base"}))

    for result in mcp(url, work):
        assert result.isError
        assert "session token is missing" in _text(result) and "/session_start" in _text(result), _text(result)


def test_app_flag_turns_mcp_on_and_defaults_to_the_space_setting():
    import app as app_module

    assert app_module.parse_args(["--mcp"]).mcp is True
    assert app_module.parse_args([]).mcp is False  # then launch(mcp_server=None): gradio reads GRADIO_MCP_SERVER


def test_requirements_pin_the_1x_mcp_sdk():
    from tests.conftest import ROOT

    pins = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("mcp")]
    assert pins == ["mcp==1.30.0"]
    import mcp  # noqa: F401
    from importlib.metadata import version

    assert version("mcp").startswith("1.")


def test_a_video_over_mcp_is_a_job_to_poll_whose_file_comes_back_as_an_mp4_url(mcp_app, tools):
    """Long jobs do not hold the MCP call open: text_to_video_job answers with a job id, job is polled until done."""
    from tests.conftest import ADMIN_KEY

    url, _, _ = mcp_app
    assert "job_id" in tools["job"].inputSchema["properties"]

    async def work(session):
        token = _value(await session.call_tool("session_start", {"admin_key": ADMIN_KEY}))["token"]  # members make text-to-video
        job = _value(await session.call_tool("text_to_video_job", {"token": token, "prompt": "a red kite over a grey sea",
                                                                   "aspect_ratio": "1:1"}))
        for _ in range(600):
            polled = await session.call_tool("job", {"token": token, "job_id": job["job_id"]})
            if "'state': 'running'" not in _text(polled):
                return job, polled
            await asyncio.sleep(0.5)
        return job, polled

    job, polled = mcp(url, work)
    assert job["state"] in ("running", "done") and job["poll"] == "/job"
    text = _text(polled)
    assert not polled.isError and "'state': 'done'" in text, text[:800]
    urls = re.findall(r"(http://127\.0\.0\.1:\d+/gradio_api/file=[^'\s]+\.mp4)", text)
    assert urls, f"no MP4 URL in the result: {text[:800]}"
    response = httpx.get(urls[0], timeout=30)
    assert response.status_code == 200 and response.content[4:8] == b"ftyp"
