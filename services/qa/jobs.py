"""QA runs a QA session starts in the app: each in a background thread, with a status to poll, its JSON and HTML kept
under <data dir>/qa/<run id>/. Only QA accounts may start, list or open them; anyone else is refused."""
from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import report
from .presets import DEFAULT_PRESETS_DIR, FAMILIES
from .run import QARun


class QARefused(UserError, PermissionError):
    pass


def require_qa(account: Any) -> None:
    if account is None or account.kind != "qa":
        raise QARefused("QA runs are for QA sessions only: start a session with the admin key.")


class QAJobs:
    def __init__(self, services: Any, presets_dir: Path = DEFAULT_PRESETS_DIR):
        self.services = services
        self.presets_dir = Path(presets_dir)
        self.folder = Path(services.settings.data_dir) / "qa"
        self._status: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def start(self, account: Any, model: str, presets: str = "all") -> str:
        require_qa(account)
        if presets not in ("all", *FAMILIES):
            raise QARefused(f"presets must be 'all' or one of {list(FAMILIES)}, not {presets!r}.")
        self.services.catalogue.get(model)  # an unknown model is refused now, with the catalogue's message
        families = FAMILIES if presets == "all" else (presets,)
        run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        status = {"run_id": run_id, "model": model, "presets": presets, "state": "running", "done": 0, "total": 0,
                  "current": "", "started": time.time(), "seconds": None, "failed": None, "error": ""}
        with self._lock:
            self._status[run_id] = status

        def progress(done: int, total: int, name: str) -> None:
            status.update(done=done, total=total, current=name)

        def work() -> None:
            try:
                result = QARun(self.services, account, model, families, self.presets_dir, progress).run()
                report.write_json(result, self.folder / run_id / "qa.json")
                report.write_html(result, self.folder / run_id / "qa.html")
                status.update(state="done", seconds=result["seconds"], failed=result["failed"])
            except Exception as exc:  # noqa: BLE001 - the status says why the run stopped
                status.update(state="error", error=f"{type(exc).__name__}: {exc}")

        threading.Thread(target=work, name=f"qa-{run_id}", daemon=True).start()
        return run_id

    def runs(self, account: Any) -> list[dict[str, Any]]:
        """Runs of this process (with progress) and finished ones kept on disk, newest first."""
        require_qa(account)
        found = {run_id: dict(status) for run_id, status in self._status.items()}
        for path in sorted(self.folder.glob("*/qa.json")) if self.folder.exists() else []:
            if path.parent.name not in found:
                data = report.read_json(path)
                found[path.parent.name] = {"run_id": path.parent.name, "model": data["model"], "presets": ",".join(data["presets"]),
                                           "state": "done", "done": len(data["cases"]), "total": len(data["cases"]),
                                           "seconds": data["seconds"], "failed": data["failed"], "error": ""}
        return sorted(found.values(), key=lambda s: s["run_id"], reverse=True)

    def status(self, account: Any, run_id: str) -> dict[str, Any]:
        require_qa(account)
        for status in self.runs(account):
            if status["run_id"] == run_id:
                return status
        raise QARefused(f"No QA run {run_id!r}.")

    def result(self, account: Any, run_id: str) -> dict[str, Any]:
        """The finished run's JSON result (refused while it runs)."""
        status = self.status(account, run_id)
        if status["state"] != "done":
            raise QARefused(f"QA run {run_id} is {status['state']} ({status['done']}/{status['total']}); open it when it is done.")
        return report.read_json(self.folder / run_id / "qa.json")

    def html_path(self, account: Any, run_id: str) -> Path:
        self.result(account, run_id)
        return self.folder / run_id / "qa.html"
