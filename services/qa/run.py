"""A QA run: every case through the real request path (the surfaces and the one runner) on a QA account, then checks.

Each case is run by the surface a visitor would use (figure takes, Text mode, Figure to Video, reference sheets) or,
where no surface takes the preset on its own (a LoRA entry, a registry entry's task), as a `PaidRun` handed to the
one `Runner`. A QA account is unlimited, so nothing is charged; its ledger notes say "(QA: waived)".
Fast settings: 2 steps where the surface takes steps, the smallest tier, one output per case.
"""
from __future__ import annotations

import base64
import io
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from pipelines.lora import LoraUse
from pipelines.types import Task

from ..creation.figures import Figures
from ..creation.image_presets import add_fragment
from ..creation.reference_sheets import ReferenceSheets
from ..creation.text import TextToImageParams
from ..creation.video import VideoService
from ..runs.runner import PaidRun, PromptCheck, Stage
from ..safety.policy import Surface
from . import presets as qa_presets

QA_STEPS = 2
BASE_PROMPT = "portrait of an adult person"
Progress = Callable[[int, int, str], None]


def thumbnail(path: Path | None, size: int = 96) -> str:
    if path is None or not Path(path).exists():
        return ""
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def cases_for(services: Any, families: tuple[str, ...], model: str, presets_dir: Path) -> tuple[list[qa_presets.Case], dict[str, Any]]:
    """The cases of the chosen families from `presets_dir`, and the loaded presets the surfaces run them with."""
    known = set(services.catalogue.ids())
    figures = qa_presets.load_figures(presets_dir, known)
    video = qa_presets.load_video(presets_dir, known)
    cases: list[qa_presets.Case] = []
    if "figures" in families:
        cases += qa_presets.figure_cases(figures, model) + qa_presets.extra_cases(presets_dir)
    if "images" in families:
        cases += qa_presets.image_cases(qa_presets.load_images(presets_dir), model)
    if "video" in families:
        cases += qa_presets.video_cases(video)
    if "loras" in families:
        cases += qa_presets.lora_cases(qa_presets.load_loras(presets_dir))
    if "models" in families:
        def remote_ready(entry) -> str:
            status = services.catalogue.status(entry)
            return "" if status.get("runnable") else f"skipped: {status.get('note') or 'no key on this deployment'}"
        cases += qa_presets.model_cases(services.catalogue, remote_ready)
    return cases, {"figures": figures.value, "video": video.value}


class QARun:
    """Runs cases for one QA account; `run()` returns the result dict that reports are written from."""

    def __init__(self, services: Any, account: Any, model: str, families: tuple[str, ...], presets_dir: Path,
                 on_progress: Progress | None = None):
        self.services, self.account, self.model = services, account, model
        self.families, self.presets_dir = families, Path(presets_dir)
        self.on_progress = on_progress
        self.catalogue = services.catalogue
        self._figure_id: str | None = None

    # -- surfaces ---------------------------------------------------------------------------------------
    def _smallest(self, entry, ratio: str | None = None) -> tuple[str, str]:
        ratios = self.catalogue.ratios(entry)
        ratio = ratio if ratio in ratios else ("1:1" if "1:1" in ratios else ratios[0])
        return ratio, self.catalogue.tiers(entry, ratio)[0]

    def _figures(self) -> Figures:
        presets = self.loaded["figures"] or self.services.figure_presets
        return Figures(self.services.db, self.services.text, presets, self.services.store, self.services.faces)

    def _figure(self) -> str:
        """One saved figure (made once per run) that the video and reference-sheet cases start from."""
        if self._figure_id is None:
            figures = self._figures()
            entry = self.catalogue.get(self.model)
            ratio, tier = self._smallest(entry)
            takes = figures.quick_takes(self.account, {"archetype": "custom"}, model=self.model, takes=1, steps=QA_STEPS,
                                        aspect_ratio=ratio, resolution=tier)
            request_id = takes.output.request_id
            self._figure_id = figures.save(self.account, "QA figure", [request_id], request_id, 0).id
        return self._figure_id

    def _figure_case(self, how: dict) -> dict:
        entry = self.catalogue.get(how["model"])
        ratio, tier = self._smallest(entry)
        takes = self._figures().quick_takes(self.account, how["choices"], model=entry.id, takes=1, steps=QA_STEPS,
                                            aspect_ratio=ratio, resolution=tier)
        return self._image_outcome(takes.output, takes.prompt, entry, ratio, tier, face=True)

    def _text_case(self, how: dict) -> dict:
        entry = self.catalogue.get(how["model"])
        ratio, tier = self._smallest(entry)
        params = TextToImageParams(prompt=add_fragment(BASE_PROMPT, how["fragment"]), model=entry.id, aspect_ratio=ratio,
                                   resolution=tier, count=1, steps=QA_STEPS)
        output = self.services.text.text_to_image(self.account, params)
        return self._image_outcome(output, params.prompt, entry, ratio, tier)

    def _video_service(self) -> VideoService:
        presets = self.loaded["video"] or self.services.video_presets
        return VideoService(self.catalogue, self.services.runner, self._figures(), self.services.history, presets)

    def _video_case(self, how: dict) -> dict:
        video = self._video_service()
        output = video.figure_to_video(self.account, self._figure(), how["action"], background=how.get("background"),
                                       outfit=how.get("outfit"))
        entry = self.catalogue.get(output.parameters.get("model") or video.presets.defaults.figure_model)
        prompt = next((s.get("prompt", "") for s in reversed(output.parameters.get("stages", [])) if s.get("stage") == "animate"),
                      output.parameters.get("prompt", ""))
        return self._video_outcome(output, prompt, entry)

    def _sheet_case(self, how: dict) -> dict:
        sheets = ReferenceSheets(self.catalogue, self.services.plans, self.services.text, self.services.runner, self._figures(), self.services.history)
        output = sheets.generate(self.account, self._figure())
        entry = self.catalogue.get(self.services.plans.reference_sheets.model)
        return self._image_outcome(output, output.parameters.get("prompt", ""), entry, None, None)

    def _lora_case(self, how: dict) -> dict:
        task = Task.REFERENCE if how["family"] == "flux-kontext" else Task.TEXT_TO_IMAGE
        entry = next(e for e in self.catalogue.entries(task, local=True) if e.family == how["family"])
        return self._stage_case(entry, task, *self._smallest(entry), loras=(LoraUse(how["lora"], 0.8),))

    def _model_case(self, how: dict) -> dict:
        entry = self.catalogue.get(how["model"])
        task = Task(how["task"])
        if task is Task.TEXT_TO_VIDEO:
            output = self.services.video.text_to_video(self.account, BASE_PROMPT + ", waving", model=entry.id,
                                                       aspect_ratio=how["ratio"], resolution=how["tier"])
            return self._video_outcome(output, output.parameters.get("prompt", ""), entry, how["ratio"], how["tier"])
        if task is Task.TEXT_TO_IMAGE:
            params = TextToImageParams(prompt=BASE_PROMPT, model=entry.id, aspect_ratio=how["ratio"], resolution=how["tier"], count=1,
                                       steps=QA_STEPS)
            return self._image_outcome(self.services.text.text_to_image(self.account, params), BASE_PROMPT, entry, how["ratio"], how["tier"])
        return self._stage_case(entry, task, how["ratio"], how["tier"])

    def _stage_case(self, entry, task: Task, ratio: str, tier: str, loras: tuple = ()) -> dict:
        """A registry entry's task (or a LoRA) that no surface runs on its own: a PaidRun of one stage, to the runner."""
        params = TextToImageParams(prompt=BASE_PROMPT, model=entry.id, aspect_ratio=ratio, resolution=tier, count=1, steps=QA_STEPS)
        _, request = self.services.text.build_request(params, task)
        start = Image.new("RGB", (request.width, request.height), (150, 120, 100))
        if task is not Task.TEXT_TO_IMAGE:
            request = replace(request, reference_images=(start,) * (2 if task is Task.MULTI_REFERENCE else 1))
        if task.is_video:
            request = replace(request, num_frames=entry.defaults.num_frames, fps=entry.defaults.fps)
        if loras:
            request = replace(request, loras=loras)
        run = PaidRun(stages=(Stage("qa", entry, task, request, tier),), surface=Surface.IMAGE if not task.is_video else Surface.VIDEO,
                      replay={"qa": entry.id, "task": task.value, "tier": tier, "loras": [l.name for l in loras]},
                      prompts=(PromptCheck(BASE_PROMPT),), record={"qa": True, "aspect_ratio": ratio, "resolution": tier})
        job = self.services.runner.run(self.account, run)
        size = (request.width, request.height)
        if task.is_video:
            return self._video_files(job.files, job.posters, job.safety, BASE_PROMPT, size, job.preview)
        return self._outcome(job.files, job.safety, BASE_PROMPT, size, job.preview, face=False)

    # -- outcomes and checks ----------------------------------------------------------------------------
    def _verdicts(self, output) -> list[str]:
        """The output check's label per kept file (as the jobs transaction recorded it), with the check's name."""
        import sqlalchemy as sa

        from ..accounts.tables import generation_files

        with self.services.db.engine.connect() as conn:
            labels = [row.safety for row in conn.execute(sa.select(generation_files.c.safety)
                                                         .where(generation_files.c.generation_id == output.request_id))]
        check = output.parameters.get("output_check", "")
        return [f"{label} ({check})" for label in labels] + (["blocked"] * int(getattr(output, "blocked", 0) or 0))

    def _image_outcome(self, output, prompt: str, entry, ratio: str | None, tier: str | None, face: bool = False) -> dict:
        size = self.catalogue.size(entry, ratio, tier) if ratio and tier else None
        verdicts = self._verdicts(output)
        return self._outcome(output.files, verdicts, prompt, size, output.preview, face)

    def _video_outcome(self, output, prompt: str, entry, ratio: str | None = None, tier: str | None = None) -> dict:
        ratio = ratio or output.parameters.get("aspect_ratio")
        tier = tier or output.parameters.get("resolution")
        size = self.catalogue.size(entry, ratio, tier) if ratio and tier else None
        return self._video_files([output.video], [output.poster] if output.poster else [], self._verdicts(output),
                                 prompt, size, output.preview)

    def _video_files(self, files, posters, verdicts, prompt, size, preview) -> dict:
        outcome = self._outcome(posters, verdicts, prompt, size, preview, face=False)
        outcome["files"] = [str(f) for f in files]
        outcome["checks"]["exists"] = bool(files) and all(Path(f).exists() and Path(f).stat().st_size > 0 for f in files)
        return outcome

    def _outcome(self, files, verdicts, prompt: str, size, preview: bool, face: bool) -> dict:
        files = [Path(f) for f in files]
        checks: dict[str, Any] = {"exists": bool(files) and all(f.exists() for f in files)}
        actual = None
        if files and files[0].exists():
            with Image.open(files[0]) as opened:
                actual = opened.size
        checks["size"] = size is None or (actual is not None and tuple(actual) == tuple(size))
        checks["verdict"] = ", ".join(v for v in verdicts if v) or "unchecked"
        if face:
            engine = self.services.faces
            if preview:
                checks["face"] = "not checked: offline preview (tiny random models draw no faces)"
            elif engine is None:
                checks["face"] = "not checked: no face engine installed"
            else:
                with Image.open(files[0]) as opened:
                    checks["face"] = engine.main_face(opened.convert("RGB")) is not None
        return {"files": [str(f) for f in files], "size": list(actual) if actual else None, "expected_size": list(size) if size else None,
                "prompt": prompt, "preview": preview, "checks": checks, "thumbnail": thumbnail(files[0] if files else None)}

    # -- the run ----------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.time()
        cases, self.loaded = cases_for(self.services, self.families, self.model, self.presets_dir)
        surfaces = {"figure": self._figure_case, "text": self._text_case, "video": self._video_case, "sheet": self._sheet_case,
                    "lora": self._lora_case, "model": self._model_case}
        results = []
        for index, case in enumerate(cases):
            if self.on_progress:
                self.on_progress(index, len(cases), case.name)
            results.append(self.run_case(case, surfaces))
        if self.on_progress:
            self.on_progress(len(cases), len(cases), "done")
        counts: dict[str, int] = {}
        for result in results:
            counts[result["family"]] = counts.get(result["family"], 0) + 1
        return {
            "model": self.model, "presets": list(self.families), "presets_dir": str(self.presets_dir), "account": self.account.id,
            "account_kind": self.account.kind, "started": started, "seconds": round(time.time() - started, 2),
            "counts": counts, "failed": sum(r["status"] == "fail" for r in results),
            "skipped": sum(r["status"] == "skip" for r in results), "passed": sum(r["status"] == "pass" for r in results),
            "cases": results,
        }

    def run_case(self, case: qa_presets.Case, surfaces: dict) -> dict[str, Any]:
        base = {"name": case.name, "family": case.family, "kind": case.kind, "fragment": case.fragment, "status": "pass",
                "error": "", "seconds": 0.0, "prompt": "", "checks": {}, "thumbnail": "", "files": []}
        if case.error:
            return {**base, "status": "fail", "error": case.error}
        if case.skip:
            return {**base, "status": "skip", "error": case.skip}
        surface = case.how.get("surface")
        if surface == "limits":
            return base  # validated on load (extra_cases): nothing to generate
        start = time.perf_counter()
        try:
            outcome = surfaces[surface](case.how)
        except Exception as exc:  # noqa: BLE001 - every failure is reported with its text, the run goes on
            return {**base, "status": "fail", "error": f"{type(exc).__name__}: {exc}", "seconds": round(time.perf_counter() - start, 3)}
        result = {**base, **outcome, "seconds": round(time.perf_counter() - start, 3)}
        checks = result["checks"]
        checks["fragment"] = not case.fragment or case.fragment.lower() in (result["prompt"] or "").lower()
        problems = [name for name, ok in checks.items() if ok is False]
        if "blocked" in str(checks.get("verdict")):
            problems.append("verdict")
        if problems:
            result["status"] = "fail"
            result["error"] = "failed checks: " + ", ".join(problems)
        return result
