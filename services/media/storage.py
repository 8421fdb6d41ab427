"""Generated files under the data dir, named by the SHA-256 of their bytes; the database holds the records."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

# Clients see a stored file only by its URL on this app (`/outputs/<name>`, served by ui/web.py), never by a path.
OUTPUTS_URL = "/outputs/"
OUTPUT_NAME = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}\.(png|mp4)$")


class OutputStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    @staticmethod
    def name_for(data: bytes, suffix: str) -> str:
        """The relative name `put` gives these bytes (known before anything is written)."""
        digest = hashlib.sha256(data).hexdigest()
        return f"{digest[:2]}/{digest}{suffix}"

    def put(self, data: bytes, suffix: str) -> Path:
        path = self.root / self.name_for(data, suffix)
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: a reader never sees half a file
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
        return path

    def relative(self, path: Path) -> str:
        """The name the database records: relative to the outputs dir, so the data dir can move."""
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()

    def path(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"{relative!r} is outside the outputs dir")
        return path

    def public(self, value: Any) -> Any:
        """`value` (a settings record, an API result) with every stored file it names, by relative name or by path
        here, as its /outputs/ URL; everything else as it is."""
        root = str(self.root.resolve()) + "/"

        def view(v: Any) -> Any:
            if isinstance(v, str):
                if OUTPUT_NAME.match(v):
                    return OUTPUTS_URL + v
                if v.startswith(root) and OUTPUT_NAME.match(v[len(root):]):
                    return OUTPUTS_URL + v[len(root):]
                return v
            if isinstance(v, dict):
                return {k: view(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [view(x) for x in v]
            return v

        return view(value)
