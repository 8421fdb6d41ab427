"""Figure Remix (same face, new scene), instruction edits, and group shots of 2-3 figures.

Remix follows the path the model declares (`face_preservation` in the registry):
- "reference": reference-editing models (FLUX.1 Kontext, FLUX.2, Qwen-Image-Edit) take the canonical image as
  their input image; likeness maps to guidance (high likeness keeps closer to the reference).
- a face adapter (SDXL; `face_path` picks one of the entry's `offered_face_paths`): IP-Adapter FaceID takes the
  figure's face embedding, FaceID Plus v2 that and the aligned face crop, InstantID that and the face's keypoints;
  likeness is the adapter scale, the LoRA weight (FaceID) and the ControlNet scale (InstantID); 0 = plain text-to-image.
Every output gets an identity score (the face engine's similarity, output vs the figure's canonical image: dlib by
default, ArcFace where a face pack is configured; services/faces) or why there is none; it is stored in the PNG's JSON
chunk with the engine's name. The face adapters need ArcFace embeddings: with dlib they are refused, saying so.
Every output made from a figure (Remix, Advanced, Group, edits of their images) also gets SimRef, the identity
monitor's score from each recogniser with a copy-paste flag (services/faces/monitor.py), in parameters["sim_ref"] and
the PNG. An edit may be re-anchored: made from the figure's canonical image instead of the picked image.
An edit's source image is checked like an upload: one the output check flags is not edited (edits are SFW).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from PIL import Image

from pipelines.face_paths import cover_keypoints
from pipelines.lora import LoraUse, load_lora_library
from pipelines.registry import ModelEntry
from pipelines.types import FaceConditioning, GenerationResult, StepCallback, Task

from ..accounts.history import History
from ..accounts.identity import Account
from ..catalogue import Catalogue
from ..errors import InvalidRequest, UserError
from ..faces import monitor
from ..faces.engine import FaceEngine
from ..faces.scores import NO_REFERENCE, group_scores, single_score
from ..runs.params import RANDOM_SEED
from ..runs.runner import PaidRun, PromptCheck, Runner, Stage
from ..safety.output import check_all
from ..safety.policy import Surface
from ..safety.uploads import load_image
from .figures import Figures
from .identity import figures_of
from .lent import Lent, group_subjects, subject, unindexed
from .text import ImageOutput, TextImages, TextToImageParams

MAX_GROUP = 3
FACE_PATH_LABELS = {"ip-adapter-faceid": "FaceID", "ip-adapter-faceid-plusv2": "FaceID Plus v2", "instantid": "InstantID"}
ARCFACE_DIM = 512  # insightface's normed embedding, what the FaceID adapters' projections take


class RemixError(InvalidRequest):
    pass


def identity_scores(faces: FaceEngine | None, reference: list[float] | None, images: list[Image.Image]) -> list[Any] | None:
    """One entry per image: a score in [-1, 1], "no face found", the best match flagged "several faces", or "no face in
    the figure's image"; None when identity features are off (no face engine)."""
    if faces is None:
        return None
    if reference is None:
        return [NO_REFERENCE] * len(images)
    return [single_score(faces, reference, image) for image in images]


def group_identity_scores(faces: FaceEngine | None, references: dict[str, list[float] | None], images: list[Image.Image]) -> list[Any] | None:
    """Per image, one score per figure of a group (faces assigned by best match); None when identity features are off."""
    if faces is None:
        return None
    return [group_scores(faces, references, image) for image in images]


class ReferenceImages:
    def __init__(self, catalogue: Catalogue, text: TextImages, runner: Runner, figures: Figures, history: History, faces: FaceEngine | None):
        self.catalogue = catalogue
        self.text = text
        self.runner = runner
        self.figures = figures
        self.history = history
        self.faces = faces

    def remix_models(self) -> list[ModelEntry]:
        return [e for e in self.catalogue.entries(local=True) if e.face_preservation != "none"
                and (Task.REFERENCE in e.tasks or Task.TEXT_TO_IMAGE in e.tasks)]

    # -- Figure Remix ------------------------------------------------------------------------------------
    def figure_remix(
        self, account: Account, *, prompt: str, model: str, figure_id: str | None = None, face_photo: str | None = None,
        likeness: float = 0.7, negative_prompt: str = "", aspect_ratio: str = "1:1", resolution: str = "1K",
        count: int = 1, seed: int | None = None, idempotency_key: str | None = None, on_step: StepCallback | None = None,
        keep_style: bool = True, mode: str | None = None, face_path: str | None = None, surface: Surface = Surface.IMAGE,
        lent: Lent | None = None,
    ) -> ImageOutput:
        """`surface`: where the prompt is used (a character's main image or cover runs on Surface.CHARACTER: SFW).
        `lent`: another visitor's characters lent for Advanced (lent.py); `figure_id` may then be one of its keys."""
        likeness = float(likeness)
        if not 0.0 <= likeness <= 1.0:
            raise RemixError(f"Likeness must be between 0 and 1, not {likeness}.")
        entry = self.catalogue.get(model)
        if entry.face_preservation == "none":
            raise RemixError(f"{entry.name} cannot keep a face; pick a model marked “keeps the face”.")
        offered = entry.offered_face_paths
        if face_path and face_path not in offered:
            names = ", ".join(FACE_PATH_LABELS[p] for p in offered) or "none (it keeps the face through the reference image)"
            raise RemixError(f"{entry.name} has no face path {face_path!r}; its face paths are: {names}.")
        path = face_path or (offered[0] if offered else "reference")
        if bool(figure_id) == bool(face_photo):
            raise RemixError("Pick one of your figures, or upload a face photo (one of the two).")
        lock = None
        reference_source = None
        pinned: tuple = ()
        if figure_id:
            ref = self._reference(account, figure_id, "advanced" if mode == "advanced" else "canonical", lent)
            reference_source = ref.source
            with Image.open(ref.image) as opened:
                reference_image = opened.convert("RGB")
            embedding = ref.embedding
            lock = self.figures.style_lock(ref, keep_style)
            pinned = ref.loras
        else:
            reference_image = load_image(face_photo, self.text.uploads).convert("RGB")
            embedding = self.faces.embed(reference_image) if self.faces else None
        context = {"remix": {**subject(figure_id), "likeness": likeness, "face_preservation": path,
                             "keep_style": bool(keep_style), **({"mode": mode} if mode else {})}}
        params = TextToImageParams(prompt=prompt, model=entry.id, negative_prompt=negative_prompt, aspect_ratio=aspect_ratio,
                                   resolution=resolution, count=count, seed=seed)
        styled = params if lock is None else replace(params, prompt=lock.prompt(prompt), negative_prompt=lock.negative(negative_prompt))
        if entry.face_preservation == "reference":
            task = Task.REFERENCE
            _, request = self.text.build_request(styled, task)
            guidance = round(entry.defaults.guidance * (1.5 - likeness), 3)
            request = replace(request, reference_images=(reference_image,), guidance=guidance)
            mapping = {"likeness": likeness, "guidance": guidance}
        else:  # a face adapter
            if self.faces is None or not self.faces.arcface:
                raise RemixError(
                    f"{FACE_PATH_LABELS[path]} needs an ArcFace face pack (PLAYGROUND_FACE_PACK); the default dlib engine "
                    "scores likeness but cannot drive FaceID. Pick a reference model (Kontext, FLUX.2, Qwen-Image-Edit)."
                )
            if embedding is None:
                raise RemixError(
                    "This model keeps the face through a face embedding, and none is available (no face was found in the "
                    "image): pick a reference model (Kontext, FLUX.2, Qwen-Image-Edit)."
                )
            if len(embedding) != ARCFACE_DIM:
                raise RemixError(
                    f"{FACE_PATH_LABELS[path]} needs an ArcFace embedding, and this figure's face was embedded by another "
                    "engine: pick its canonical take again (All Figures) to embed it with the face pack."
                )
            task = Task.TEXT_TO_IMAGE
            _, request = self.text.build_request(styled, task)
            face, mapping = self._face(path, embedding, reference_image, likeness, (request.width, request.height))
            request = replace(request, face=face)
        if lock is not None:
            mapping["style_register"] = lock.record()
        if reference_source:
            mapping["reference"] = reference_source  # canonical image or the figure's reference sheet
        if pinned:  # the figure's LoRAs, on models of their family (others say why they were left out)
            usable = [p for p in pinned if load_lora_library().get(p["id"]).family == entry.family]
            if usable:
                request = replace(request, loras=tuple(LoraUse(p["id"], float(p["weight"])) for p in usable))
            mapping["pinned_loras"] = {"applied": [p["id"] for p in usable],
                                       "skipped": [p["id"] for p in pinned if p not in usable]}
        return self._run(account, entry, task, request, params, context, mapping, embedding, idempotency_key, on_step, surface,
                         monitored=self._monitored(account, [figure_id] if figure_id else [], lent))

    def _reference(self, account: Account, figure_id: str, purpose: str, lent: Lent | None):
        """One of the account's figures, or a figure lent through a character (only by its key, only in `lent`)."""
        if lent is not None and figure_id in lent:
            return lent.reference(figure_id, purpose)
        return self.figures.reference(account, figure_id, purpose=purpose)

    def _monitored(self, account: Account, figure_ids: list[str], lent: Lent | None = None) -> dict[str, tuple[list[float] | None, Any]]:
        """What SimRef compares against, per figure: the stored embedding and the canonical image (never the sheet)."""
        out = {}
        for figure_id in figure_ids:
            try:
                ref = self._reference(account, figure_id, "canonical", lent)
            except UserError:
                continue  # the figure is gone: nothing to compare with
            out[figure_id] = (ref.embedding, ref.image)
        return out

    def _face(self, path: str, embedding: list[float], image: Image.Image, likeness: float,
              size: tuple[int, int]) -> tuple[FaceConditioning, dict[str, Any]]:
        """The face conditioning of an adapter path and the likeness mapping it records (README: the likeness control).
        FaceID (and Plus v2): the adapter and its LoRA at `likeness`; InstantID: the adapter and the ControlNet."""
        mapping: dict[str, Any] = {"likeness": likeness, "face_path": path, "ip_adapter_scale": likeness}
        if self.faces is None and path != "ip-adapter-faceid":
            raise RemixError(f"{FACE_PATH_LABELS[path]} reads the face in the figure's image, and face analysis is off: "
                             "configure a face pack (PLAYGROUND_FACE_PACK), or pick FaceID or a reference model.")
        if path == "instantid":
            points = self.faces.keypoints(image)
            if points is None:
                raise RemixError("InstantID draws the face's keypoints, and no face was found in the figure's image; "
                                 "pick FaceID or a reference model.")
            mapping["controlnet_conditioning_scale"] = likeness
            return FaceConditioning(tuple(embedding), scale=likeness, path=path, control_scale=likeness,
                                    keypoints=cover_keypoints(points, image.size, size)), mapping
        crop = None
        if path == "ip-adapter-faceid-plusv2":
            crop = self.faces.aligned_crop(image)
            if crop is None:
                raise RemixError("FaceID Plus v2 reads the aligned face, and no face was found in the figure's image; "
                                 "pick FaceID or a reference model.")
        mapping["faceid_lora_weight"] = likeness  # the recipe: the adapter and its LoRA (0 and 0 = plain text-to-image)
        return FaceConditioning(tuple(embedding), scale=likeness, lora_weight=likeness, path=path, crop=crop), mapping

    # -- Advanced ----------------------------------------------------------------------------------------
    def advanced_models(self) -> list[ModelEntry]:
        """Face-keeping models that reach Advanced's tiers (2K natively, 4K natively or through their upscale)."""
        tiers = set(self.catalogue.mode("advanced").tiers)
        return [e for e in self.catalogue.entries() if e.face_preservation != "none"
                and (Task.REFERENCE in e.tasks or (Task.TEXT_TO_IMAGE in e.tasks and not e.is_remote))
                and tiers & {t for sizes in e.sizes.values() for t in sizes}]

    def advanced_image(
        self, account: Account, *, figure_id: str, description: str, model: str, aspect_ratio: str = "3:4",
        resolution: str = "2K", likeness: float = 0.8, count: int = 1, seed: int | None = None, keep_style: bool = True,
        idempotency_key: str | None = None, on_step: StepCallback | None = None, lent: Lent | None = None,
    ) -> ImageOutput:
        """Advanced: a natural scene description of one of your figures (or of a character `lent` to you) at 2K or 4K;
        its likeness is kept by the model's face-preservation path (reference image or face adapter); no presets."""
        mode = self.catalogue.mode("advanced")
        if resolution not in mode.tiers:
            raise RemixError(f"{mode.label} makes {' or '.join(mode.tiers)} images, not {resolution}; pick one of them.")
        if int(count) > mode.max_batch:
            raise RemixError(f"{mode.label} makes {mode.max_batch} image{'s' if mode.max_batch > 1 else ''} per request, "
                             f"not {int(count)}.")
        if not figure_id:
            raise RemixError(f"{mode.label} describes one of your figures: pick a figure first.")
        entry = self.catalogue.get(model)
        if entry.id not in {e.id for e in self.advanced_models()}:
            names = ", ".join(e.name for e in self.advanced_models())
            raise RemixError(f"{entry.name} cannot keep a face at 2K/4K; {mode.label} models are: {names}.")
        return self.figure_remix(account, prompt=description, model=entry.id, figure_id=figure_id, likeness=likeness,
                                 aspect_ratio=aspect_ratio, resolution=resolution, count=int(count), seed=seed,
                                 keep_style=keep_style, idempotency_key=idempotency_key, on_step=on_step, mode="advanced",
                                 lent=lent)

    def group_models(self) -> list[ModelEntry]:
        """Multi-reference models that reach Advanced's tiers."""
        tiers = set(self.catalogue.mode("advanced").tiers)
        return [e for e in self.catalogue.entries(Task.MULTI_REFERENCE) if tiers & {t for s in e.sizes.values() for t in s}]

    # -- Edit ------------------------------------------------------------------------------------------
    def edit_image(
        self, account: Account, *, request_id: str, index: int, instruction: str, model: str, seed: int | None = None,
        idempotency_key: str | None = None, on_step: StepCallback | None = None, keep_style: bool = True,
        reanchor: bool = False,
    ) -> ImageOutput:
        """Change one of your images as the instruction says; the result is a new version linked to its source. An image
        of one of your figures keeps that figure's style register unless keep_style is off. `reanchor`: edit the figure's
        canonical image instead of the picked one (an edit of an edit drifts from the face; this starts again from it)."""
        entry = self.catalogue.require(model, Task.EDIT)
        images = self.history.image_files(account.id, request_id)
        if not 0 <= int(index) < len(images):
            raise RemixError(f"Pick one of your images: {request_id} has {len(images)} image(s).")
        source_path = images[int(index)]
        context: dict[str, Any] = {"edit_of": {"request_id": request_id, "index": int(index)}}
        figure_ids = figures_of(self.figures.db, account.id, self.history.get(account.id, request_id))
        if reanchor:
            take = self._canonical_take(account, figure_ids)
            source_path = take["file"]
            context["reanchor"] = {"request_id": take["request_id"], "index": take["index"]}
        with Image.open(source_path) as opened:
            source = opened.convert("RGB")
        lock = self._lock_of_request(account, request_id, keep_style)
        if lock is not None:
            context["keep_style"] = bool(keep_style)
        return self.edit_picture(account, source, instruction=instruction, model=entry.id, seed=seed, context=context,
                                 idempotency_key=idempotency_key, on_step=on_step, lock=lock, figure_ids=figure_ids)

    def _canonical_take(self, account: Account, figure_ids: list[str]) -> dict[str, Any]:
        """The canonical take of the picked image's figure (the first, for a group), for a re-anchored edit."""
        for figure_id in figure_ids:
            try:
                take = self.figures.get(account, figure_id).canonical
            except UserError:
                continue
            if take is not None:
                return take
        raise RemixError("Re-anchor edits the figure's canonical image, and this image was not made from one of your "
                         "figures (Remix, Advanced, Group, a take, or an edit of one): untick Re-anchor to edit it as it is.")

    def _lock_of_request(self, account: Account, request_id: str, keep_style: bool):
        """The style lock of the figure an earlier generation was made of (Remix, Group, a take), if any."""
        record = self.history.get(account.id, request_id)
        context = (record.request or {}).get("context") or {} if record else {}
        figure_id = (context.get("remix") or {}).get("figure_id") or next(iter((context.get("group") or {}).get("figure_ids") or []), None)
        if not figure_id:
            return None
        try:
            return self.figures.style_lock(self.figures.reference(account, figure_id), keep_style)
        except UserError:
            return None  # the figure is gone: nothing to keep

    def edit_picture(
        self, account: Account, source: Image.Image, *, instruction: str, model: str, context: dict[str, Any],
        seed: int | None = None, idempotency_key: str | None = None, on_step: StepCallback | None = None, lock=None,
        figure_ids: list[str] | tuple[str, ...] = (),
    ) -> ImageOutput:
        """The edit path on a picture the caller already holds (e.g. a character's main image); SFW only.
        `context` says what it is an edit of (recorded with the request); `figure_ids`: the figures the picture is of
        (recorded, and the output's SimRef is measured against their canonical faces)."""
        entry = self.catalogue.require(model, Task.EDIT)
        verdict = check_all(self.runner.jobs.safety, [source.convert("RGB")])[0]  # edits are SFW: checked like an upload
        if verdict.flagged:
            raise RemixError(f"Edits are SFW, and the output check flagged the image to edit ({verdict.reason}); "
                             "pick another image. Nothing was charged.")
        ratio = self.catalogue.nearest_ratio(entry, source.width, source.height)
        params = TextToImageParams(prompt=instruction, model=entry.id, aspect_ratio=ratio, resolution="1K", count=1, seed=seed)
        styled = params if lock is None else replace(params, prompt=lock.instruction(instruction))
        _, request = self.text.build_request(styled, Task.EDIT)
        request = replace(request, reference_images=(source.convert("RGB"),))
        mapping: dict[str, Any] = {} if lock is None else {"style_register": lock.record()}
        if figure_ids:
            mapping["figure_ids"] = list(figure_ids)
        return self._run(account, entry, Task.EDIT, request, params, context, mapping, None, idempotency_key, on_step, Surface.EDIT,
                         monitored=self._monitored(account, list(figure_ids)))

    # -- Group -----------------------------------------------------------------------------------------
    def group_image(
        self, account: Account, *, figure_ids: list[str], prompt: str, model: str, aspect_ratio: str = "16:9",
        seed: int | None = None, idempotency_key: str | None = None, on_step: StepCallback | None = None,
        keep_style: bool = True, resolution: str = "2K", lent: Lent | None = None,
    ) -> ImageOutput:
        """2-3 figures in one scene (yours, and characters `lent` to you by their keys); Advanced's rules (its tiers, any
        aspect ratio), priced per figure."""
        figure_ids = list(dict.fromkeys(f for f in figure_ids if f))
        if not 2 <= len(figure_ids) <= MAX_GROUP:
            raise RemixError(f"Pick 2 or 3 of your figures for a group shot, not {len(figure_ids)}.")
        tiers = self.catalogue.mode("advanced").tiers
        if resolution not in tiers:
            raise RemixError(f"Group shots are made at {' or '.join(tiers)}, not {resolution}.")
        entry = self.catalogue.require(model, Task.MULTI_REFERENCE)
        if entry.id not in {e.id for e in self.group_models()}:
            raise RemixError(f"{entry.name} does not make group shots at {' or '.join(tiers)}; pick one of "
                             f"{', '.join(e.name for e in self.group_models())}.")
        refs = [self._reference(account, f, "advanced", lent) for f in figure_ids]  # reference sheets when picked
        images = []
        for ref in refs:
            with Image.open(ref.image) as opened:
                images.append(opened.convert("RGB"))
        params = TextToImageParams(prompt=prompt, model=entry.id, aspect_ratio=aspect_ratio, resolution=resolution, count=1, seed=seed)
        # the group takes the first figure's register (the one the visitor put first)
        lock = self.figures.style_lock(refs[0], keep_style)
        styled = params if lock is None else replace(params, prompt=lock.prompt(prompt), negative_prompt=lock.negative(""))
        _, request = self.text.build_request(styled, Task.MULTI_REFERENCE)
        request = replace(request, reference_images=tuple(images))
        context = {"group": group_subjects(figure_ids), "keep_style": bool(keep_style)}
        mapping: dict[str, Any] = {} if lock is None else {"style_register": lock.record()}
        mapping["references"] = [ref.source for ref in refs]  # canonical image or reference sheet, per figure
        references = {ref.figure_id: ref.embedding for ref in refs}
        return self._run(account, entry, Task.MULTI_REFERENCE, request, params, context, mapping, references,
                         idempotency_key, on_step, Surface.IMAGE, figures=len(figure_ids),
                         monitored=self._monitored(account, figure_ids, lent))

    # -- shared ----------------------------------------------------------------------------------------
    def _run(self, account, entry, task, request, params, context, mapping, embedding, idempotency_key, on_step, surface, figures=1,
             monitored=None):
        asked = {"prompt": params.prompt, "model": entry.id, "negative_prompt": params.negative_prompt,
                 "aspect_ratio": params.aspect_ratio, "resolution": params.resolution, "count": request.count,
                 "seed": params.seed if params.seed is not None else RANDOM_SEED, "context": context}
        record: dict[str, Any] = {"aspect_ratio": params.aspect_ratio, "resolution": params.resolution, **mapping}
        figure_ids = context.get("group", {}).get("figure_ids") or [context.get("remix", {}).get("figure_id")]
        if any(figure_ids):
            record["figure_ids"] = [f for f in figure_ids if f]  # recorded in the PNG's JSON chunk
        characters = context.get("group", {}).get("character_ids") or [context.get("remix", {}).get("character_id")]
        if any(characters):
            record["character_ids"] = [c for c in characters if c]  # borrowed: the character, never its figure

        def annotate(result: GenerationResult) -> None:
            faces = monitor.Seen(self.faces) if self.faces is not None else None  # each output's faces detected once
            if isinstance(embedding, dict):  # a group: one score per figure
                scores = group_identity_scores(faces, embedding, result.images)
            else:
                scores = identity_scores(faces, embedding, result.images)
            if scores is not None:
                result.parameters["identity_scores"] = scores
                result.parameters["identity_engine"] = self.faces.name  # scores of different engines do not compare
            references = {f: monitor.reference(faces, image, emb) for f, (emb, image) in (monitored or {}).items()}
            simrefs = unindexed(monitor.outputs(faces, references, result.images))
            if simrefs is not None:
                result.parameters["sim_ref"] = simrefs  # the identity monitor (the PNG gets its output's own)

        if params.resolution == "4K" and not entry.is_remote:  # a 2K generation, then the 2x upscale stage
            stages = self.text.four_k(entry, task, request, params.aspect_ratio)
            stages = (replace(stages[0], figures=figures), stages[1])
        else:
            stages = (Stage("generate", entry, task, request, params.resolution, figures=figures),)
        run = PaidRun(
            stages=stages,
            surface=surface,
            replay=asked,
            prompts=(PromptCheck(params.prompt or "", negative=params.negative_prompt or ""),),
            record=record,
            annotate=annotate,
        )
        return ImageOutput.from_job(self.runner.run(account, run, idempotency_key, on_step))
