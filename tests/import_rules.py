"""The layering rules as code: which top-level packages a module may import, checked on the source (AST), so a lazy
import inside a function counts as much as one at the top. Used by tests/test_architecture.py."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (package whose modules are checked, packages they must never import, why)
RULES = (
    ("ui", ("pipelines",), "the UI imports gradio and services only"),
    ("services", ("gradio", "gradio_client"), "services never import gradio"),
    ("pipelines", ("gradio", "gradio_client"), "pipelines never import gradio"),
    ("pipelines", ("services",), "pipelines know nothing of services (credits, UI)"),
)
# Service objects the UI must not reach into: it reads models, sizes and prices from services.catalogue, and pays
# through the surfaces, which hand their runs to the runner.
UI_FORBIDDEN_ATTRIBUTES = ("registry", "runtime", "jobs", "runner")


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    source: str
    rule: str
    root: Path = ROOT

    def __str__(self) -> str:
        return f"{self.path.relative_to(self.root)}:{self.line}: {self.source.strip()}  <- {self.rule}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the tree, relative ones resolved against `module`."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from pkg import sub` may import a submodule: count `pkg.sub` too
            found.extend((node.lineno, f"{name}.{alias.name}") for alias in node.names)
    return found


def check_file(path: Path, root: Path = ROOT) -> list[Violation]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))
    module = module_name(path, root)
    top = module.split(".")[0]
    out = []
    for line, name in imported_modules(tree, module, path.name == "__init__.py"):
        first = name.split(".")[0]
        for package, forbidden, why in RULES:
            if top == package and first in forbidden:
                out.append(Violation(path, line, lines[line - 1], f"{package}/ must not import {first}: {why}", root))
    if top == "ui":
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in UI_FORBIDDEN_ATTRIBUTES:
                out.append(Violation(path, node.lineno, lines[node.lineno - 1],
                                     f"ui/ must not use services.{node.attr}: read services.catalogue, pay through the surfaces", root))
    return sorted(set(out), key=lambda v: (str(v.path), v.line, v.rule))


def check_tree(root: Path = ROOT, packages: tuple[str, ...] = ("ui", "services", "pipelines")) -> list[Violation]:
    out = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            out.extend(check_file(path, root))
    return out
