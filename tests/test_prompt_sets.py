"""Prompt sets: the shipped sets load and are licensed, uploads in every format parse to the same prompts, every
refusal says what to change, and the prompt policy is applied per prompt, naming the refused prompt's number."""
from __future__ import annotations

import dataclasses
import json
import tomllib

import pytest

from services.accounts.identity import Account
from services.presets_io import PRESETS_DIR
from services.research.prompt_sets import (
    MAX_PROMPT_CHARS, PROMPT_SETS_DIR, PromptSetError, PromptSetFileError, check_prompts, load_prompt_sets,
    parse_upload, summaries,
)
from services.safety.policy import PromptPolicy, Surface, load_safety_file

STARTER_CATEGORIES = {"portraits", "scenes", "groups", "hands", "text", "styles"}
POLICY = PromptPolicy.from_file(load_safety_file(PRESETS_DIR / "safety.toml"))
GUEST = Account("guest-1", "visitor", "guest", "Guest", "Guest", 50, False, ())  # the guest tier unlocks nothing


# -- shipped sets ---------------------------------------------------------------------------------------------------
def test_shipped_sets_load_with_unique_ids_and_bounded_text():
    sets = load_prompt_sets()
    assert {"starter", "partiprompts"} <= set(sets)
    for prompt_set in sets.values():
        ids = [p.id for p in prompt_set.prompts]
        assert len(ids) == len(set(ids))
        assert all(p.text.strip() and len(p.text) <= MAX_PROMPT_CHARS for p in prompt_set.prompts)
    listed = {s["id"]: s for s in summaries(sets)}
    assert listed["starter"]["count"] == len(sets["starter"].prompts)
    assert set(listed["starter"]["categories"]) == STARTER_CATEGORIES
    assert set(listed["starter"]) == {"id", "title", "licence", "count", "categories"}


def test_starter_covers_six_categories_with_30_to_60_prompts():
    starter = load_prompt_sets()["starter"]
    assert 30 <= len(starter.prompts) <= 60
    assert starter.licence == "Apache-2.0 (this project)"
    assert {p.category for p in starter.prompts} == STARTER_CATEGORIES
    for category in STARTER_CATEGORIES:
        assert sum(p.category == category for p in starter.prompts) >= 5


def test_partiprompts_slice_is_licensed_and_drawbench_is_not_shipped():
    parti = load_prompt_sets()["partiprompts"]
    assert 40 <= len(parti.prompts) <= 80
    assert "Apache" in parti.licence and "google-research/parti" in parti.source
    assert len(parti.meta["commit"]) == 40 and parti.meta["path"] == "PartiPrompts.tsv"
    licence = PROMPT_SETS_DIR / parti.meta["licence_file"]
    assert licence.name == "LICENSE-PartiPrompts"
    assert "Apache License" in licence.read_text(encoding="utf-8")
    assert all(p.category and p.extra.get("challenge") for p in parti.prompts)
    assert not [p for p in PROMPT_SETS_DIR.iterdir() if "drawbench" in p.name.lower()]


@pytest.mark.parametrize("set_id", ["starter", "partiprompts"])
def test_every_shipped_prompt_passes_the_strictest_surface_for_a_guest(set_id):
    prompt_set = load_prompt_sets()[set_id]
    check_prompts(prompt_set, POLICY, GUEST, Surface.FIGURE)  # SFW and adults only: raises on any refusal
    check_prompts(prompt_set, POLICY, GUEST, Surface.IMAGE)


def _write(folder, name, text):
    (folder / name).write_text(text, encoding="utf-8")


HEAD = '[set]\nid = "x"\ntitle = "X"\nlicence = "MIT"\nsource = "here"\ndescription = "d"\n'


@pytest.mark.parametrize("body, expected", [
    ('[[prompts]]\nid = "a"\ntext = "one"\n[[prompts]]\nid = "a"\ntext = "two"\n', r"prompt 2 \(id “a”\): the id “a” is used twice"),
    ('[[prompts]]\nid = "a"\ntext = "  "\n', r"prompt 1 \(id “a”\): `text` must be a non-empty string"),
    ('[[prompts]]\nid = "long"\ntext = "' + "w" * 1001 + '"\n', r"prompt 1 \(id “long”\): `text` has 1,001 characters"),
    ('[[prompts]]\ntext = "no id"\n', r"prompt 1: `id` must be a string"),
    ("", r"has no \[\[prompts\]\] entries"),
])
def test_malformed_set_files_name_the_file_and_prompt(tmp_path, body, expected):
    _write(tmp_path, "bad.toml", HEAD + body)
    with pytest.raises(PromptSetFileError, match=expected) as caught:
        load_prompt_sets(tmp_path)
    assert "bad.toml" in str(caught.value)


def test_set_files_take_a_shorter_limit_and_refuse_a_missing_licence_file(tmp_path):
    _write(tmp_path, "a.toml", HEAD + '[[prompts]]\nid = "a"\ntext = "twelve chars"\n')
    assert load_prompt_sets(tmp_path)["x"].texts == ["twelve chars"]
    with pytest.raises(PromptSetFileError, match="12 characters; the limit is 10"):
        load_prompt_sets(tmp_path, max_chars=10)
    _write(tmp_path, "a.toml", HEAD.replace('description', 'licence_file = "LICENSE-x"\ndescription')
           + '[[prompts]]\nid = "a"\ntext = "t"\n')
    with pytest.raises(PromptSetFileError, match="licence_file “LICENSE-x” is not next to it"):
        load_prompt_sets(tmp_path)


# -- uploads --------------------------------------------------------------------------------------------------------
PROMPTS = ["a lighthouse keeper at dusk, oil painting", 'a sign that says "HELLO, WORLD"', "two women playing chess"]


def test_each_upload_format_parses_to_the_same_prompts():
    txt = "# my prompts\n\n" + "\n".join(f"  {p}  " for p in PROMPTS) + "\n" + PROMPTS[0] + "\n"
    rows = "".join('"' + p.replace('"', '""') + f'",c{i}\r\n' for i, p in enumerate(PROMPTS))
    csv_text = "Prompt,Category\r\n" + rows
    jsonl = "\n".join(json.dumps({"text": p, "category": f"c{i}"}) for i, p in enumerate(PROMPTS)) + "\n\n"
    parsed = [parse_upload(txt.encode(), "mine.txt"), parse_upload(csv_text.encode("utf-8-sig"), "C:\\Users\\me\\mine.CSV"),
              parse_upload(jsonl.encode(), "mine.jsonl")]
    for prompt_set in parsed:
        assert prompt_set.texts == PROMPTS  # stripped, comments and blank lines skipped, the repeat dropped
        assert [p.id for p in prompt_set.prompts] == ["p001", "p002", "p003"]
        assert prompt_set.id == "upload-mine"
    assert [p.category for p in parsed[1].prompts] == ["c0", "c1", "c2"] == [p.category for p in parsed[2].prompts]
    assert parsed[1].title == "mine.CSV"


def test_uploads_keep_their_own_ids_and_refuse_repeated_ones():
    data = b"id,text,notes\nfirst,a red kite,ignored\n,a blue kite,\n"
    assert [p.id for p in parse_upload(data, "k.csv").prompts] == ["first", "p002"]
    with pytest.raises(PromptSetError, match="ids must be unique: “k” is on lines 1 and 2"):
        parse_upload(b'{"prompt": "a", "id": "k"}\n{"prompt": "b", "id": "k"}\n', "k.jsonl")


def _refusal(data: bytes, name: str, **limits) -> str:
    with pytest.raises(PromptSetError) as caught:
        parse_upload(data, name, **limits)
    message = str(caught.value)
    assert message[0].isupper() and message.endswith(".") and "Traceback" not in message
    return message


def test_refusals_say_what_to_change():
    assert _refusal(b"x" * 300_000, "big.txt") == (
        "The file is 300,000 bytes; upload at most 256,000 bytes (split it into smaller files).")
    many = "\n".join(f"prompt number {i}" for i in range(250)).encode()
    assert _refusal(many, "many.txt") == "The file has 250 prompts; upload at most 200."
    assert _refusal(many, "many.txt", max_prompts=10) == "The file has 250 prompts; upload at most 10."
    assert "not UTF-8" in _refusal("café".encode("latin-1"), "latin.txt")
    assert "save it as UTF-8" in _refusal(b"ok\n\xff\xfe", "bad.txt")
    assert "empty" in _refusal(b"", "none.txt")
    assert "empty" in _refusal(b"  \n\n ", "blank.jsonl")
    assert "no prompts" in _refusal(b"# just a comment\n", "comments.txt")
    assert "not a .txt, .csv or .jsonl" in _refusal(b"a cat", "prompts.pdf")
    assert "NUL" in _refusal(b"a\x00b", "nul.txt")
    assert "shorten it to at most 1,000" in _refusal(("w" * 1001).encode(), "long.txt")


@pytest.mark.parametrize("data, expected", [
    (b"caption;style\nhello;x\n", "`prompt` (or `text`) column"),
    (b"prompt\n", "no prompts"),
    (b"prompt,category\na,b,c\n", "has 3 fields but the header has 2"),
    (b"prompt,prompt\na,b\n", "column `prompt` twice"),
])
def test_csv_shapes_other_than_a_prompt_column_are_refused(data, expected):
    assert expected in _refusal(data, "p.csv")


@pytest.mark.parametrize("line, expected", [
    (json.dumps({"prompt": "x" * 5000}), "Line 2 is 5,014 bytes; each JSONL line may be at most 4,096 bytes"),
    ('{"prompt": "a", "meta": {"b": {"c": {"d": {"e": 1}}}}}', "Line 2 is nested 5 levels deep; at most 4"),
    ("[" * 2000 + "]" * 2000, "Line 2 is nested 2000 levels deep"),
    ('["a cat"]', "Line 2 is a list, not an object"),
    ('"a cat"', "Line 2 is a string, not an object"),
    ("{prompt: a cat}", "Line 2 is not valid JSON"),
    ('{"caption": "a cat"}', 'Line 2 has no "prompt" (or "text") field'),
    ('{"prompt": 7}', 'Line 2: "prompt" must be a string'),
])
def test_jsonl_lines_are_bounded_before_parsing_and_must_be_objects(line, expected):
    assert expected in _refusal(b'{"prompt": "fine"}\n' + line.encode(), "p.jsonl")


def test_jsonl_depth_counts_brackets_outside_strings_only():
    data = json.dumps({"prompt": "a [[[[[[ {{{{{{ \\\" ]] kite", "meta": {"a": {"b": [1]}}}).encode()
    assert parse_upload(data, "ok.jsonl").texts == ["a [[[[[[ {{{{{{ \\\" ]] kite"]


# -- the prompt policy per prompt --------------------------------------------------------------------------------
def test_the_policy_refusal_names_the_prompt_number():
    upload = parse_upload("\n".join([
        "a woman in a red coat walking in the snow", "a man reading in a library",
        "a fisherman on a pier", "a potter at her wheel", "a chef in a kitchen", "two friends on a bench",
        "an erotic photo of a teen", "a cyclist in the rain",
    ]).encode(), "mixed.txt")
    with pytest.raises(PromptSetError) as caught:
        check_prompts(upload, POLICY, GUEST, Surface.IMAGE)
    message = str(caught.value)
    assert message.startswith("Prompt 7: Sexual content involving minors is never allowed")
    assert caught.value.number == 7 and caught.value.prompt_id == "p007" and caught.value.rule == "minors"
    # SFW-only surfaces refuse what the image surface allows a member, still naming the number
    adults = parse_upload(b"a portrait of a bride\nthe same bride as a child\n", "figure.txt")
    check_prompts(dataclasses.replace(adults, prompts=adults.prompts[:1]), POLICY, GUEST, Surface.FIGURE)
    with pytest.raises(PromptSetError, match=r"^Prompt 2: Figures are adults: describe an adult \(found “child”\)"):
        check_prompts(adults, POLICY, GUEST, Surface.FIGURE)


def test_a_real_guest_account_from_the_services(make_services):
    guest = make_services().identity.start(None, ip="10.9.0.1").account
    assert not guest.can("adult_prompts")
    upload = parse_upload(b"a lighthouse at dusk\na nude portrait on a beach\n", "g.txt")
    with pytest.raises(PromptSetError, match=r"^Prompt 2: 18\+ prompts are for members; remove “nude”"):
        check_prompts(upload, POLICY, guest)


def test_the_shipped_files_are_plain_toml():
    for path in PROMPT_SETS_DIR.glob("*.toml"):
        assert tomllib.loads(path.read_text(encoding="utf-8"))["set"]["id"]
