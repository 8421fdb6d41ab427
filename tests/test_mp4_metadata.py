"""MP4s carry their generation settings in the container's metadata, read back by two independent readers (PyAV, and
Debian's ffprobe when installed) and by the app's own (services/media/mp4.py); the settings clients see name stored
files by /outputs/ URL, never by a server path, in the API's JSON and in the PNG/MP4 metadata alike."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from services.accounts.identity import HFUser
from services.creation.text import TextToImageParams
from services.media.mp4 import bare_mp4, encode_mp4, mp4_tags, parse_ffmetadata, probe_mp4, read_mp4_metadata, tag_mp4
from services.media.png import read_png_metadata

# The remote (talking avatar) path runs against the fake provider of test_remote, with its fixtures.
from .test_remote import db_url, fake, services as provider_services  # noqa: F401  (pytest fixtures)

av = pytest.importorskip("av", reason="PyAV (requirements-dev.txt) reads the MP4 metadata independently")
FFPROBE = shutil.which("ffprobe")
needs_ffprobe = pytest.mark.skipif(FFPROBE is None, reason="Debian's ffmpeg (ffprobe) is not installed; .ci/run installs it")

PROMPT = 'a café at dusk; "lanterns" = warm # light \\ rain\nsecond line 🎭'
PARAMS = {"prompt": PROMPT, "negative_prompt": "blurry", "model": "ltx-video", "steps": 4, "guidance": 3.0, "width": 64,
          "height": 48, "num_frames": 5, "fps": 8, "request_id": "0123abcd", "seeds": [11], "sampler": "Euler"}


def pyav_tags(path: Path) -> dict[str, str]:
    with av.open(str(path)) as container:
        return dict(container.metadata)


def ffprobe_tags(path: Path) -> dict[str, str]:
    done = subprocess.run([FFPROBE, "-v", "error", "-of", "json", "-show_entries", "format_tags", str(path)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["format"]["tags"]


def readers() -> list:
    """PyAV, and ffprobe where installed (its own test above says when it is skipped)."""
    return [pyav_tags] + ([ffprobe_tags] if FFPROBE else [])


def assert_settings(tags: dict[str, str], prompt: str, model: str, seed: int, request_id: str | None = None) -> dict:
    """The three tags: title = the prompt, comment = A1111's parameters text, description = the JSON record."""
    assert tags["title"] == prompt
    assert f"Seed: {seed}" in tags["comment"] and f"Model: {model}" in tags["comment"] and tags["comment"].startswith(prompt)
    record = json.loads(tags["description"])
    assert (record["prompt"], record["model"], record["seed"]) == (prompt, model, seed)
    assert {"steps", "width", "height", "request_id"} <= set(record)
    if request_id is not None:
        assert record["request_id"] == request_id
    return record


def frames(count: int = 5, size: tuple[int, int] = (64, 48)) -> list[Image.Image]:
    return [Image.new("RGB", size, (40 * i, 90, 160)) for i in range(count)]


@pytest.mark.parametrize("read", [pyav_tags, pytest.param(ffprobe_tags, marks=needs_ffprobe)], ids=["pyav", "ffprobe"])
def test_encoded_mp4_carries_the_settings_for_pyav_ffprobe_and_the_app(tmp_path, read):
    path = tmp_path / "out.mp4"
    path.write_bytes(encode_mp4(frames(), 8, mp4_tags(PARAMS, 11)))
    record = assert_settings(read(path), PROMPT, "ltx-video", 11, "0123abcd")
    assert (record["steps"], record["width"], record["height"]) == (4, 64, 48) and "seeds" not in record
    ours = read_mp4_metadata(path)
    assert ours["title"] == PROMPT and ours["record"]["seed"] == 11
    assert (ours["parameters"]["seed"], ours["parameters"]["Model"], ours["parameters"]["Steps"]) == (11, "ltx-video", "4")
    assert ours["parameters"]["negative_prompt"] == "blurry" and (ours["parameters"]["width"], ours["parameters"]["height"]) == (64, 48)
    info = probe_mp4(path)  # the metadata changes nothing a player decodes
    assert (info.width, info.height, info.frames, info.fps) == (64, 48, 5, 8.0) and info.codec.startswith("h264")
    assert path.read_bytes()[4:8] == b"ftyp"


def test_ffmetadata_escapes_round_trip():
    text = ";FFMETADATA1\ntitle=a\\=b\\;c\\#d\\\\e\\\nf\n; a comment\nencoder=Lavf\n[STREAM]\ntitle=stream\n"
    assert parse_ffmetadata(text) == {"title": "a=b;c#d\\e\nf", "encoder": "Lavf"}


def test_a_provider_file_is_remuxed_with_the_tags_keeping_its_soundtrack(tmp_path):
    """A provider's own MP4 (with audio) keeps every stream and gains the settings tags (stream copy)."""
    import imageio_ffmpeg

    source = tmp_path / "provider.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=8:duration=1",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-shortest", "-metadata", "title=provider title", str(source)], check=True)
    tagged = tmp_path / "tagged.mp4"
    tagged.write_bytes(tag_mp4(source.read_bytes(), mp4_tags(dict(PARAMS, model="avatar-voice"), 12)))
    for read in readers():
        assert_settings(read(tagged), PROMPT, "avatar-voice", 12)
    with av.open(str(tagged)) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
    assert probe_mp4(tagged).frames == probe_mp4(source).frames
    assert tag_mp4(b"not a video", {"title": "x"}) == b"not a video"  # kept as it came (logged), never lost

    bare = tmp_path / "bare.mp4"  # a copy without the settings, for viewers who may not see them
    bare.write_bytes(bare_mp4(tagged.read_bytes()))
    for read in readers():
        assert not {"title", "comment", "description"} & set(read(bare)), read(bare)
    assert read_mp4_metadata(bare) == {} and PROMPT.encode() not in bare.read_bytes()
    with av.open(str(bare)) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
    with pytest.raises(ValueError):
        bare_mp4(b"not a video")


# -- every video path of the app, through the services --------------------------------------------------------

def figure_for(services, account):
    takes = services.figures.quick_takes(account, {"archetype": "explorer"}, model="sdxl-base", takes=1, steps=2, seed=5)
    return services.figures.save(account, "Scout", [takes.output.request_id], takes.output.request_id, 0)


def assert_no_server_path(value, services, where: str) -> None:
    """No string names a path on this server: stored files only as /outputs/ URLs or their relative names."""
    text = value if isinstance(value, str) else json.dumps(value)
    for root in {str(services.settings.data_dir), str(services.settings.data_dir.resolve()), tempfile.gettempdir() + "/"}:
        assert root not in text, f"{where} names a server path ({root}): {text[:300]}"


def assert_video_tagged(services, output, prompt_has: str) -> None:
    record = None
    for read in readers():
        tags = read(output.video)
        record = assert_settings(tags, output.parameters["prompt"], output.parameters["model"], output.seed, output.request_id)
        assert prompt_has in tags["title"]
        assert_no_server_path(tags, services, f"{read.__name__} of {output.video.name}")
    assert record is not None
    assert read_mp4_metadata(output.video)["record"] == record
    poster = read_png_metadata(output.poster.read_bytes())["record"]
    assert poster == record  # the poster PNG carries the same record
    for stage in record.get("stages", []):
        if "file" in stage:  # a stage's stored file (the start frame) by its app URL
            assert re.fullmatch(r"/outputs/[0-9a-f]{2}/[0-9a-f]{64}\.png", stage["file"]), stage["file"]


def test_figure_to_video_with_a_start_frame_is_tagged(make_services):
    services = make_services()
    account = services.identity.start(None, ip="10.9.0.1").account
    figure = figure_for(services, account)
    output = services.video.figure_to_video(account, figure.id, "wave", background="beach", model="ltx-video", seed=4)
    assert_video_tagged(services, output, "waves")
    assert [s["stage"] for s in read_mp4_metadata(output.video)["record"]["stages"]] == ["start_frame", "animate"]
    # the record in the database keeps the relative name (the data dir can move)
    assert not output.parameters["stages"][0]["file"].startswith("/")


def test_image_to_video_and_text_to_video_are_tagged(make_services):
    services = make_services()
    member = services.identity.start(None, ip="10.9.0.2", hf_user=HFUser("301", "m")).account
    with services.db.begin() as conn:
        services.ledger.adjust(conn, member.id, 500, "test", "credits for videos")
    image = services.text.text_to_image(member, TextToImageParams(prompt="a red kite", model="sdxl-base", steps=2))
    animated = services.video.image_to_video(member, image.request_id, 0, "smile-nod", prompt="gentle breeze",
                                             model="wan2.1-i2v-480p", aspect_ratio="1:1", seed=6)
    assert_video_tagged(services, animated, "gentle breeze")
    written = services.video.text_to_video(member, "a red kite climbing over a grey sea, slow pan", model="wan2.1-t2v-1.3b",
                                           aspect_ratio="16:9", seed=7)
    assert_video_tagged(services, written, "a red kite climbing")


def test_talking_avatar_from_a_provider_is_tagged(provider_services):
    services = provider_services
    member = services.identity.start(None, ip="10.9.1.5", hf_user=HFUser("302", "m")).account
    with services.db.begin() as conn:
        services.ledger.adjust(conn, member.id, 1000, "test", "credits for remote runs")
    image = services.text.text_to_image(member, TextToImageParams(prompt="a portrait", model="sdxl-base", steps=2, aspect_ratio="1:1"))
    output = services.video.image_to_video(member, image.request_id, 0, "smile-nod", model="avatar-voice", aspect_ratio="1:1",
                                           script="Welcome to the lighthouse.", voice="George", seed=8)
    assert_video_tagged(services, output, "smiles")
    record = read_mp4_metadata(output.video)["record"]
    assert record["provider"] and record["stages"][0]["script"] == "Welcome to the lighthouse."


# -- through the launched app: what a client sees -------------------------------------------------------------

def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings(item)


def assert_public(value, services, where: str) -> None:
    assert_no_server_path(value, services, where)
    for text in strings(value):
        if text.startswith("/"):
            assert text.startswith("/outputs/"), f"{where}: {text!r} is a server path, not an /outputs/ URL"
        if re.search(r"(^|/)[0-9a-f]{2}/[0-9a-f]{64}\.(png|mp4)$", text):
            assert text.startswith("/outputs/"), f"{where}: {text!r} is a storage name, not an /outputs/ URL"


def test_the_app_shows_outputs_urls_never_server_paths(app_server, client, token):
    url, services = app_server
    files, info, _, _ = client.predict(prompt="a lighthouse at dusk", model="sdxl-base", steps=2, seed=3, token=token,
                                       api_name="/text_to_image")
    assert_public(info, services, "text_to_image JSON")
    assert info["files"][0].startswith("/outputs/")
    served = httpx.get(url + info["files"][0], timeout=10).content
    record = read_png_metadata(served)["record"]
    assert record["prompt"] == "a lighthouse at dusk" and record["request_id"] == info["request_id"]
    assert_public(record, services, "PNG metadata")

    _, quick, _, _ = client.predict(archetype="friend", prompt="", model="sdxl-base", takes=1, token=token, api_name="/figure_quick")
    figure = client.predict(token, "Robin", quick["request_id"], 0, api_name="/figure_save")
    video, vinfo, _, _ = client.predict(figure_id=figure["id"], action="wave", background="beach", outfit="", prompt="",
                                        model="ltx-video", aspect_ratio="1:1", seed=3, token=token, api_name="/figure_to_video")
    assert_public(vinfo, services, "figure_to_video JSON")
    start = vinfo["parameters"]["stages"][0]
    assert start["stage"] == "start_frame" and start["file"].startswith("/outputs/")
    assert httpx.get(url + start["file"], timeout=10).status_code == 200  # the URL serves the start frame
    assert vinfo["video"].startswith("/outputs/") and vinfo["poster"].startswith("/outputs/")

    # the MP4 as the client downloaded it (gradio's copy) and as /outputs/ serves it carry the same settings
    downloaded = Path(video["video"] if isinstance(video, dict) else video)
    fetched = Path(tempfile.mkdtemp()) / "fetched.mp4"
    fetched.write_bytes(httpx.get(url + vinfo["video"], timeout=10).content)
    for path in (downloaded, fetched):
        for read in readers():
            tags = read(path)
            assert_settings(tags, vinfo["parameters"]["prompt"], "ltx-video", 3, vinfo["request_id"])
            assert_public(json.loads(tags["description"]), services, f"{read.__name__} of the MP4")
            assert_no_server_path(tags, services, f"{read.__name__} of the MP4")

    assert_public(client.predict(token, api_name="/history"), services, "history JSON")


def test_public_view_shows_stored_files_by_url(app_server):
    """What every settings JSON passes through (API results, the History details): a stored file, by its relative
    name (a start image, a stage's start frame) or by its path here, becomes its /outputs/ URL."""
    from ui.web import public_view

    _, services = app_server
    name = "ab/" + "c" * 64 + ".png"
    here = str(services.store.root.resolve() / name)
    shown = public_view({"settings": {"init_image": name, "stages": [{"file": here}], "prompt": "ab/cd.png at dusk"},
                         "db": str(services.settings.data_dir.resolve() / "playground.db")}, services)
    assert shown["settings"] == {"init_image": "/outputs/" + name, "stages": [{"file": "/outputs/" + name}],
                                 "prompt": "ab/cd.png at dusk"}
    assert_no_server_path(shown, services, "public_view")
