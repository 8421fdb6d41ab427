"""Prompt sets: the curated and published sets shipped in presets/prompt_sets/, and visitors' own uploads.

A shipped set is one TOML file: a `[set]` table (id, title, licence, source, description; optional commit, path and
licence_file, the licence text that must sit next to it) and `[[prompts]]` entries (id, text, category; any other
string or integer keys, such as PartiPrompts' `challenge`, are kept in `extra`). `load_prompt_sets` validates every
file on load and names the file and prompt id of anything malformed.

An upload (.txt, .csv or .jsonl) is bounded before it is decoded: its size, UTF-8, the number of prompts, each
prompt's length, and for JSONL each line's length and nesting before `json.loads`. Every refusal is a
`PromptSetError` whose message says what to change. `check_prompts` then applies the app's prompt policy to every
prompt of a set, naming the first refused prompt by its number.
"""
from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from ..accounts.identity import Account
from ..errors import UserError
from ..presets_io import PRESETS_DIR
from ..safety.policy import PromptPolicy, PromptStyle, Surface

PROMPT_SETS_DIR = PRESETS_DIR / "prompt_sets"
MAX_PROMPT_CHARS = 1000  # a prompt's length in characters (the policy's own, longer limits still apply when checked)
MAX_UPLOAD_BYTES = 256_000
MAX_UPLOAD_PROMPTS = 200
MAX_JSONL_LINE_BYTES = 4096
MAX_JSONL_DEPTH = 4  # a top-level object counts as depth 1
MAX_ID_CHARS = 64
UPLOAD_FORMATS = (".txt", ".csv", ".jsonl")
_SET_KEYS = {"id", "title", "licence", "source", "description", "commit", "path", "licence_file"}
_SET_REQUIRED = ("id", "title", "licence", "source", "description")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class PromptSetError(UserError, ValueError):
    """An upload or a set of prompts that cannot be used as given; the message says what to change."""

    def __init__(self, message: str, *, number: int | None = None, prompt_id: str | None = None, rule: str | None = None):
        self.number, self.prompt_id, self.rule = number, prompt_id, rule
        super().__init__(message)


class PromptSetFileError(ValueError):
    """A shipped prompt-set file (presets/prompt_sets/*.toml) is malformed: a bug in the project, not the visitor's."""


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    category: str = ""
    extra: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class PromptSet:
    id: str
    title: str
    licence: str
    source: str
    prompts: tuple[Prompt, ...]
    description: str = ""
    meta: dict = field(default_factory=dict, hash=False)  # commit, path, licence_file where given

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.prompts]

    @property
    def categories(self) -> list[str]:
        """Categories in first-seen order (uncategorised prompts are not listed)."""
        return list(dict.fromkeys(p.category for p in self.prompts if p.category))

    def summary(self) -> dict:
        return {"id": self.id, "title": self.title, "licence": self.licence, "count": len(self.prompts),
                "categories": self.categories}


def summaries(sets: Mapping[str, PromptSet]) -> list[dict]:
    """One summary per set, for listing them (in the mapping's order)."""
    return [s.summary() for s in sets.values()]


# -- shipped sets --------------------------------------------------------------------------------------------------
def load_prompt_sets(folder: Path | str = PROMPT_SETS_DIR, *, max_chars: int = MAX_PROMPT_CHARS) -> dict[str, PromptSet]:
    """Every *.toml in `folder` by set id, each validated; `max_chars` is e.g. the policy's natural-prompt limit."""
    folder = Path(folder)
    sets: dict[str, PromptSet] = {}
    where: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):
        loaded = load_prompt_set_file(path, max_chars=max_chars)
        if loaded.id in sets:
            raise PromptSetFileError(f"{path}: set id “{loaded.id}” is also the id of {where[loaded.id]}")
        sets[loaded.id], where[loaded.id] = loaded, path
    return sets


def load_prompt_set_file(path: Path | str, *, max_chars: int = MAX_PROMPT_CHARS) -> PromptSet:
    path = Path(path)

    def bad(problem: str) -> PromptSetFileError:
        return PromptSetFileError(f"{path}: {problem}")

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise bad(f"not valid UTF-8 TOML: {exc}") from exc
    unknown = set(data) - {"set", "prompts"}
    if unknown:
        raise bad(f"unknown top-level keys {sorted(unknown)}; a set file has only [set] and [[prompts]]")
    head = data.get("set")
    if not isinstance(head, dict):
        raise bad("missing the [set] table")
    for key in _SET_REQUIRED:
        if not isinstance(head.get(key), str) or not head[key].strip():
            raise bad(f"[set] needs a non-empty string `{key}`")
    if set(head) - _SET_KEYS:
        raise bad(f"[set] has unknown keys {sorted(set(head) - _SET_KEYS)}; allowed: {sorted(_SET_KEYS)}")
    if not _ID.match(head["id"]):
        raise bad(f"[set] id “{head['id']}” must be letters, digits, '.', '_' or '-'")
    licence_file = head.get("licence_file")
    if licence_file is not None and not (path.parent / str(licence_file)).is_file():
        raise bad(f"[set] licence_file “{licence_file}” is not next to it")
    entries = data.get("prompts")
    if not isinstance(entries, list) or not entries:
        raise bad("has no [[prompts]] entries")
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        label = f"prompt {number}" + (f" (id “{entry['id']}”)" if isinstance(entry.get("id"), str) else "")
        pid, text, category = entry.get("id"), entry.get("text"), entry.get("category", "")
        if not isinstance(pid, str) or not _ID.match(pid) or len(pid) > MAX_ID_CHARS:
            raise bad(f"{label}: `id` must be a string of letters, digits, '.', '_' or '-' (at most {MAX_ID_CHARS})")
        if pid in seen:
            raise bad(f"{label}: the id “{pid}” is used twice")
        if not isinstance(text, str) or not text.strip():
            raise bad(f"{label}: `text` must be a non-empty string")
        if text != text.strip():
            raise bad(f"{label}: `text` has leading or trailing whitespace")
        if len(text) > max_chars:
            raise bad(f"{label}: `text` has {len(text):,} characters; the limit is {max_chars:,}")
        if not isinstance(category, str):
            raise bad(f"{label}: `category` must be a string")
        extra = {k: v for k, v in entry.items() if k not in ("id", "text", "category")}
        odd = [k for k, v in extra.items() if not isinstance(v, (str, int)) or isinstance(v, bool)]
        if odd:
            raise bad(f"{label}: extra keys must be strings or integers: {odd}")
        seen.add(pid)
        prompts.append(Prompt(pid, text, category, extra))
    meta = {k: head[k] for k in ("commit", "path", "licence_file") if k in head}
    return PromptSet(head["id"], head["title"], head["licence"], head["source"], tuple(prompts), head["description"], meta)


# -- uploads -------------------------------------------------------------------------------------------------------
@dataclass
class _Row:
    line: int
    text: str
    category: str = ""
    id: str = ""


def parse_upload(data: bytes, filename: str, *, max_bytes: int = MAX_UPLOAD_BYTES, max_prompts: int = MAX_UPLOAD_PROMPTS,
                 max_chars: int = MAX_PROMPT_CHARS) -> PromptSet:
    """A visitor's file as a PromptSet: .txt (a prompt per line; blank lines and # comments skipped), .csv (a header
    with a `prompt` or `text` column, optional `category` and `id`; other columns ignored) or .jsonl (an object per
    line with "prompt" or "text", optional "category" and "id"). Exact repeats are dropped (the first is kept)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("parse_upload takes the file's bytes")
    data = bytes(data)
    name = _display_name(filename)
    suffix = PurePosixPath(name.lower()).suffix
    if suffix not in UPLOAD_FORMATS:
        raise PromptSetError(f"The file “{name}” is not a .txt, .csv or .jsonl file. Upload a .txt file (one prompt per line), "
                             f"a .csv file with a `prompt` column, or a .jsonl file with a \"prompt\" on each line.")
    if len(data) > max_bytes:
        raise PromptSetError(f"The file is {len(data):,} bytes; upload at most {max_bytes:,} bytes (split it into smaller files).")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PromptSetError(f"The file is not UTF-8 text (byte {exc.start + 1:,} is not valid UTF-8); "
                             f"save it as UTF-8 and upload it again.") from exc
    if "\x00" in text:
        raise PromptSetError("The file contains NUL characters, so it is not a text file; upload plain UTF-8 text.")
    if not text.strip():
        raise PromptSetError("The file is empty; upload a file with at least one prompt.")
    rows = {".txt": _txt_rows, ".csv": _csv_rows, ".jsonl": _jsonl_rows}[suffix](text)
    prompts = _prompts(rows, max_prompts=max_prompts, max_chars=max_chars)
    stem = re.sub(r"[^a-z0-9]+", "-", PurePosixPath(name).stem.lower()).strip("-")[:40] or "prompts"
    return PromptSet(f"upload-{stem}", name, "uploaded by the visitor", f"upload: {name}", prompts,
                     f"{len(prompts)} prompts uploaded from {name}")


def _display_name(filename: str) -> str:
    name = re.split(r"[\\/]", str(filename or ""))[-1].strip()
    name = "".join(c for c in name if c.isprintable())
    return name[:120] or "upload"


def _txt_rows(text: str) -> list[_Row]:
    rows = []
    for line, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped and not stripped.startswith("#"):
            rows.append(_Row(line, stripped))
    return rows


def _csv_rows(text: str) -> list[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)  # leading blank lines
        if header is None:
            raise PromptSetError("The file is empty; upload a file with at least one prompt.")
        names = [cell.strip().lower() for cell in header]
        column = "prompt" if "prompt" in names else "text" if "text" in names else None
        if column is None:
            shown = ", ".join(cell.strip() for cell in header)[:200]
            raise PromptSetError(f"The CSV's first row must be a header with a `prompt` (or `text`) column, and "
                                 f"optionally `category` and `id`; its first row is: {shown}.")
        for wanted in (column, "category", "id"):
            if names.count(wanted) > 1:
                raise PromptSetError(f"The CSV header has the column `{wanted}` twice; keep one.")
        at = {n: names.index(n) for n in (column, "category", "id") if n in names}
        rows = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            line = reader.line_num
            if len(record) > len(header):
                raise PromptSetError(f"Line {line} of the CSV has {len(record)} fields but the header has "
                                     f"{len(header)}; quote prompts that contain commas (\"like, this\").")
            cell = lambda n: record[at[n]].strip() if n in at and at[n] < len(record) else ""  # noqa: E731
            if not cell(column):
                continue
            rows.append(_Row(line, cell(column), cell("category"), cell("id")))
        return rows
    except csv.Error as exc:
        raise PromptSetError(f"The CSV cannot be read ({exc}); save it as comma-separated UTF-8 with a header row.") from exc


def _jsonl_rows(text: str) -> list[_Row]:
    rows = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        size = len(raw.encode("utf-8"))
        if size > MAX_JSONL_LINE_BYTES:
            raise PromptSetError(f"Line {line} is {size:,} bytes; each JSONL line may be at most "
                                 f"{MAX_JSONL_LINE_BYTES:,} bytes. Shorten it.")
        depth = _json_depth(raw)
        if depth > MAX_JSONL_DEPTH:
            raise PromptSetError(f"Line {line} is nested {depth} levels deep; at most {MAX_JSONL_DEPTH} are allowed. "
                                 f"Write each line as a flat object like {{\"prompt\": \"...\"}}.")
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise PromptSetError(f"Line {line} is not valid JSON ({exc.args[0] if exc.args else exc}); "
                                 f"write each line as {{\"prompt\": \"...\"}}.") from exc
        if not isinstance(value, dict):
            kind = {list: "a list", str: "a string"}.get(type(value), "a number or literal")
            raise PromptSetError(f"Line {line} is {kind}, not an object; write each line as {{\"prompt\": \"...\"}}.")
        key = "prompt" if "prompt" in value else "text" if "text" in value else None
        if key is None:
            raise PromptSetError(f"Line {line} has no \"prompt\" (or \"text\") field; write it as {{\"prompt\": \"...\"}}.")
        fields = {"prompt": value[key], "category": value.get("category", ""), "id": value.get("id", "")}
        for name, got in fields.items():
            if not isinstance(got, str):
                raise PromptSetError(f"Line {line}: \"{name if name != 'prompt' else key}\" must be a string.")
        if fields["prompt"].strip():
            rows.append(_Row(line, fields["prompt"].strip(), fields["category"].strip(), fields["id"].strip()))
    return rows


def _json_depth(line: str) -> int:
    """The deepest nesting of [ and { in a JSON text, outside strings (read without parsing it)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in line:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _prompts(rows: Iterable[_Row], *, max_prompts: int, max_chars: int) -> tuple[Prompt, ...]:
    unique: list[_Row] = []
    seen: set[str] = set()
    for row in rows:
        if row.text not in seen:
            seen.add(row.text)
            unique.append(row)
    if not unique:
        raise PromptSetError("The file has no prompts (only blank lines or comments); add at least one prompt.")
    if len(unique) > max_prompts:
        raise PromptSetError(f"The file has {len(unique):,} prompts; upload at most {max_prompts:,}.")
    given: dict[str, int] = {}
    for number, row in enumerate(unique, 1):
        if len(row.text) > max_chars:
            raise PromptSetError(f"Prompt {number} (line {row.line}) has {len(row.text):,} characters; shorten it to "
                                 f"at most {max_chars:,}.", number=number)
        if row.id:
            if not _ID.match(row.id) or len(row.id) > MAX_ID_CHARS:
                raise PromptSetError(f"Prompt {number} (line {row.line}): the id “{row.id[:MAX_ID_CHARS]}” may use only "
                                     f"letters, digits, '.', '_' and '-' (at most {MAX_ID_CHARS}).", number=number)
            if row.id in given:
                raise PromptSetError(f"Prompt ids must be unique: “{row.id}” is on lines {given[row.id]} and {row.line}.",
                                     number=number)
            given[row.id] = row.line
        if len(row.category) > MAX_ID_CHARS:
            raise PromptSetError(f"Prompt {number} (line {row.line}): the category is longer than {MAX_ID_CHARS} "
                                 f"characters; shorten it.", number=number)
    out, taken = [], set(given)
    for number, row in enumerate(unique, 1):
        pid = row.id or f"p{number:03d}"
        while not row.id and pid in taken:
            pid += "x"
        taken.add(pid)
        out.append(Prompt(pid, row.text, row.category, {"line": row.line}))
    return tuple(out)


# -- the prompt policy, per prompt ---------------------------------------------------------------------------------
def check_prompts(prompt_set: PromptSet, policy: PromptPolicy, account: Account, surface: Surface | str = Surface.IMAGE,
                  style: PromptStyle | str = PromptStyle.NATURAL) -> None:
    """Apply the prompt policy to every prompt; the first refusal is raised as "Prompt N: <the policy's message>"."""
    for number, prompt in enumerate(prompt_set.prompts, 1):
        try:
            policy.check(prompt.text, account, surface, style)
        except UserError as exc:
            raise PromptSetError(f"Prompt {number}: {exc}", number=number, prompt_id=prompt.id,
                                 rule=getattr(exc, "rule", None)) from exc
