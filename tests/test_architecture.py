"""The layering and the one paid path, checked on the source: these fail naming the offending file and line."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from tests.import_rules import ROOT, check_file, check_tree


def test_the_layers_hold():
    violations = check_tree()
    assert not violations, "import rules broken:\n" + "\n".join(map(str, violations))


def test_a_broken_rule_is_reported_with_file_and_line(tmp_path):
    """The checker itself: deliberately bad modules in a scratch tree, each rule broken once."""
    files = {
        "ui/bad_tab.py": """
            import gradio as gr
            from services.catalogue import Catalogue

            def build(services):
                from pipelines.registry import ASPECT_RATIOS  # a lazy import still counts
                return services.registry.get("x")
            """,
        "services/bad_service.py": "import gradio\n",
        "pipelines/sub/__init__.py": "",
        "pipelines/sub/bad_family.py": "from ...services.accounts import ledger\nfrom gradio_client import Client\n",
        "pipelines/good.py": "import torch\nfrom .types import Task\n",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    found = [str(v) for v in check_tree(tmp_path)]
    assert found == [
        "ui/bad_tab.py:5: from pipelines.registry import ASPECT_RATIOS  # a lazy import still counts  "
        "<- ui/ must not import pipelines: the UI imports gradio and services only",
        "ui/bad_tab.py:6: return services.registry.get(\"x\")  "
        "<- ui/ must not use services.registry: read services.catalogue, pay through the surfaces",
        "services/bad_service.py:1: import gradio  <- services/ must not import gradio: services never import gradio",
        "pipelines/sub/bad_family.py:1: from ...services.accounts import ledger  "
        "<- pipelines/ must not import services: pipelines know nothing of services (credits, UI)",
        "pipelines/sub/bad_family.py:2: from gradio_client import Client  "
        "<- pipelines/ must not import gradio_client: pipelines never import gradio",
    ], found
    assert check_file(tmp_path / "pipelines/good.py", tmp_path) == []


def _calls(attr: str, owner: str) -> list[str]:
    """Modules with a call `<...>.<owner>.<attr>(...)` or `<owner>.<attr>(...)`."""
    hits = []
    for path in sorted(ROOT.glob("*.py")) + sorted(p for d in ("ui", "services", "pipelines", "bench") for p in (ROOT / d).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr:
                value = node.func.value
                name = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", None)
                if name == owner:
                    hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return hits


def test_one_module_runs_pipelines_and_the_jobs_transaction():
    jobs = _calls("run", "jobs")
    runtime = [c for c in _calls("run", "runtime") if not c.startswith("bench/")]  # benchmarks time the raw call
    assert {c.split(":")[0] for c in jobs} == {"services/runs/runner.py"}, jobs
    assert {c.split(":")[0] for c in runtime} == {"services/runs/runner.py"}, runtime
    # the run call's local path: only a Ray Serve replica's own runtime calls it from outside (pipelines/, no ledger)
    here = _calls("run_here", "runtime")
    assert {c.split(":")[0] for c in here} == {"pipelines/serve/deployment.py"}, here


def test_the_paid_tail_exists_once():
    """Only the jobs transaction moves credits for a request; the runner is its only caller."""
    movers = {c.split(":")[0] for verb in ("reserve", "capture", "refund") for c in _calls(verb, "ledger")}
    assert movers == {"services/accounts/jobs.py"}, movers


def test_surfaces_import_neither_jobs_nor_runtime():
    for path in sorted((ROOT / "services" / "creation").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in names if m.endswith("accounts.jobs") or m == "pipelines.runtime"}, path.name
