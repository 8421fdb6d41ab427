"""Shared builders for the chat tests: a character with openers, personas and a challenge, and a spy on the tiny
chat model's real generate() call."""
from __future__ import annotations

from pathlib import Path

from services.creation.characters import AvatarChoice, Profile

SKIMAGE = Path(__import__("skimage").__file__).parent / "data"
SECRET = "Never tell anyone that the lighthouse lamp is powered by a captured star from the northern sky"
PERSONA = "I keep bees on a rooftop in Lisbon and I am afraid of deep water"
GOAL = {"goal": "Make Maren laugh about the storm", "target": "Maren tells you where the old shipwreck lies",
        "hint": "Joke about the storm or the soggy bread"}
OPENERS = ("The lamp is lit. Are you the new keeper?", "Storm's coming. Help me with the shutters?",
           "You brought bread? Good.", "Quiet night. Sit.")

CHARACTER = Profile(
    fields={"name": "Maren", "first_mes": "Welcome to the lighthouse, {{user}}. I'm {{char}}.",
            "system_prompt": SECRET, "description": "A lighthouse keeper in her fifties on a northern island.",
            "personality": "dry, patient", "scenario": "A lighthouse on a storm-beaten island at dusk.",
            "post_history_instructions": "Keep replies under three sentences."},
    intro="A lighthouse keeper with stories.", tags=("mystery",), opening_messages=OPENERS,
    chat_models=("Qwen/Qwen3-4B-Instruct-2507", "Qwen/Qwen3-32B"),
    persona_cards=({"name": "Ines", "description": PERSONA}, {"name": "Tom", "description": "A sailor."}),
    challenge_modes=(GOAL,),
)


def account(services, ip: str):
    return services.identity.start(None, ip=ip).account


def character(services, owner, visibility: str = "private", figure_id: str = "", **kwargs):
    if visibility != "private" and not figure_id:
        kwargs.setdefault("avatar", AvatarChoice("upload", upload=str(SKIMAGE / "astronaut.png")))
    return services.characters.create(owner, CHARACTER, visibility, figure_id=figure_id, **kwargs)


def figure(services, owner, name: str = "Maren figure"):
    takes = services.figures.quick_takes(owner, {"archetype": "artist"}, model="sdxl-base", takes=1, steps=2)
    return services.figures.save(owner, name, [takes.output.request_id], takes.output.request_id, 0)


class GenerateSpy:
    """Wraps the loaded tiny model's generate(): records the prompt text it was given (decoded input ids), then runs it."""

    def __init__(self, services, monkeypatch, model: str = "qwen3-4b-instruct"):
        from pipelines.types import Task

        entry = services.registry.get(model)
        self.pipe = services.runtime.pipeline(entry, Task.CHAT)
        self.prompts: list[str] = []
        self.input_ids: list[list[int]] = []
        original = self.pipe.model.generate

        def spy(*args, **kwargs):
            ids = kwargs["input_ids"][0].tolist()
            self.input_ids.append(ids)
            self.prompts.append(self.pipe.tokenizer.decode(ids))
            return original(*args, **kwargs)

        monkeypatch.setattr(self.pipe.model, "generate", spy)


def fake_model(monkeypatch, reply):
    """Replace the chat family's runner by a fake model whose reply is reply(messages) (the runner, the policy on
    the reply, the jobs and the store stay real)."""
    seen = []

    def run(pipe, request, on_step, cancel):
        seen.append(request.messages)
        text = reply(request.messages)
        if request.stream:
            import re

            for piece in re.findall(r"\S+\s*", text):  # word by word, as a model streams
                request.stream(piece)
        return GenerationResult(seeds=[request.seed], parameters={"prompt": request.prompt, "count": 1}, texts=[text])

    from pipelines.family import get_family
    from pipelines.types import GenerationResult, Task

    monkeypatch.setitem(get_family("causal-lm").runners, Task.CHAT, run)
    return seen
