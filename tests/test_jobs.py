"""Long requests as jobs to poll (`/*_job` + `/job`): the start answers at once with a job id, the job's run is the
blocking endpoint's paid run (same price, refunds, idempotency key), a refusal comes back from the start call with
nothing charged, only the session that started a job sees it, and after a restart the job's outcome is read back
from the database."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from gradio_client.exceptions import AppError

from services.media.mp4 import probe_mp4
from services.runs.background import Background, JobRefused
from services.errors import UserError
from tests.test_app_video import make_figure


def _poll(client, token: str, job_id: str, timeout_s: float = 300) -> tuple[dict, list]:
    deadline = time.monotonic() + timeout_s
    while True:
        status, files = client.predict(token=token, job_id=job_id, api_name="/job")
        if status["state"] != "running" or time.monotonic() > deadline:
            return status, files
        time.sleep(0.5)


def test_a_video_job_answers_at_once_and_polls_to_the_mp4_charged_as_the_blocking_call(client, app_server):
    from gradio_client import Client

    url, services = app_server
    token = client.predict(api_name="/session_start")["token"]
    figure = make_figure(client, token)
    before = client.predict(token, api_name="/balance")["balance"]
    quote = client.predict(token=token, model="ltx-video", task="image-to-video", aspect_ratio="1:1", resolution="480p",
                         api_name="/quote")

    started = time.monotonic()
    job = client.predict(figure_id=figure["id"], action="laugh", model="ltx-video", aspect_ratio="1:1", seed=3, token=token,
                         api_name="/figure_to_video_job")
    assert job["job_id"].startswith("figure_to_video-") and job["poll"] == "/job"
    assert job["state"] in ("running", "done")
    assert time.monotonic() - started < services.background.settle_s + 5

    # a retried start with the same job id (its idempotency key) is the same job, not a second charge
    again = client.predict(figure_id=figure["id"], action="laugh", model="ltx-video", aspect_ratio="1:1", seed=3, token=token,
                           idempotency_key=job["job_id"], api_name="/figure_to_video_job")
    assert again["job_id"] == job["job_id"]

    other = client.predict(api_name="/session_start")["token"]
    with pytest.raises(AppError, match="No job"):
        client.predict(token=other, job_id=job["job_id"], api_name="/job")

    status, files = _poll(client, token, job["job_id"])
    assert status["state"] == "done", status
    assert status["total"] > 0 and status["done"] == status["total"]
    assert status["settings"]["charged"] == quote["total"] > 0
    assert client.predict(token, api_name="/balance")["balance"] == before - quote["total"]
    video = Path(files[0])
    meta = probe_mp4(video)
    assert (meta.width, meta.height) == (512, 512) and meta.frames == status["settings"]["parameters"]["num_frames"]
    assert "/outputs/" in str(status["settings"]) and str(services.settings.data_dir) not in str(status)

    # a restart: a fresh job table reads the job's outcome back from the database by its id (the idempotency key)
    kept = services.background
    services.background = Background(services.history.by_key)
    try:
        status, files = Client(url, verbose=False).predict(token=token, job_id=job["job_id"], api_name="/job")
    finally:
        services.background = kept
    assert status["state"] == "done" and probe_mp4(Path(files[0])).frames == meta.frames
    with pytest.raises(AppError, match="No job"):
        client.predict(token=token, job_id="figure_to_video-never-started", api_name="/job")


def test_a_refused_job_is_the_start_calls_error_and_charges_nothing(client, token):
    figure = make_figure(client, token)
    history = client.predict(token, api_name="/history")
    before = client.predict(token, api_name="/balance")["balance"]
    with pytest.raises(AppError, match="Image to Video is for members"):
        client.predict(request_id=history[0]["id"], token=token, api_name="/image_to_video_job")
    with pytest.raises(AppError, match="Prompts on video is for members"):
        client.predict(figure_id=figure["id"], prompt="at sunset", token=token, api_name="/figure_to_video_job")
    with pytest.raises(AppError, match="session token is missing"):
        client.predict(prompt="a kite", api_name="/text_to_video_job")
    assert client.predict(token, api_name="/balance")["balance"] == before


def test_jobs_report_steps_and_keep_to_the_visitors_share():
    """The job machinery alone (no model involved): progress as the pipeline's callback reports it, a cap per
    visitor, a UserError raised after the start settles is the job's error text."""
    background = Background(lambda account, key: None, per_visitor=2, settle_s=0.2)
    gate = threading.Event()

    def work(progress):
        progress(0, desc="Loading model")
        progress((3, 10), desc="Generating")
        gate.wait(10)
        return {"files": []}

    first = background.start("a", "text_to_video", work)
    assert background.get("a", first.id)["done"] == 3 and background.get("a", first.id)["progress"] == "Generating"
    background.start("a", "text_to_video", work)
    with pytest.raises(JobRefused, match="2 jobs running"):
        background.start("a", "text_to_video", work)
    background.start("b", "text_to_video", work)  # another visitor is not held up
    with pytest.raises(JobRefused, match="No job"):
        background.get("b", first.id)
    gate.set()
    assert background.wait("a", first.id, 10)["state"] == "done"

    def late_refusal(progress):
        progress((1, 4))
        time.sleep(0.4)
        raise UserError("The provider refused the prompt; nothing was charged.")

    late = background.start("c", "text_to_video", late_refusal)
    assert background.wait("c", late.id, 10)["state"] == "error"
    assert background.get("c", late.id)["error"] == "The provider refused the prompt; nothing was charged."
