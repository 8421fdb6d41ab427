"""Generated files under the data dir, named by the SHA-256 of their bytes; the database holds the records."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


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
