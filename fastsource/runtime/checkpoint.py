"""Checkpoint storage: the enumerator's state and every reader's splits, written atomically per id."""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Optional

from fastsource.errors import SerializationError

CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^chk-(\d{12})\.json$")


class CheckpointStore:
    """A directory of `chk-<id>.json` files. A checkpoint exists only once its file is complete: it is
    written to a temporary file, flushed to disk and renamed into place, so a crash mid-write never
    leaves a partial checkpoint that a restore would take. Older checkpoints beyond `retain` are
    deleted after a new one is durable."""

    def __init__(self, directory: str | os.PathLike, retain: int = 3) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.retain = max(1, retain)

    def ids(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _NAME.match(p.name)))

    def _path(self, checkpoint_id: int) -> Path:
        return self.directory / f"chk-{checkpoint_id:012d}.json"

    def next_id(self) -> int:
        ids = self.ids()
        return ids[-1] + 1 if ids else 1

    def write(self, checkpoint_id: int, state: dict[str, Any]) -> Path:
        """Durably store `state` under `checkpoint_id`."""
        document = {"version": CHECKPOINT_VERSION, "checkpoint_id": checkpoint_id, **state}
        fd, tmp = tempfile.mkstemp(prefix=".chk-", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(document, out)
                out.flush()
                os.fsync(out.fileno())
            path = self._path(checkpoint_id)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        for old in self.ids()[:-self.retain]:
            self._path(old).unlink(missing_ok=True)
        return path

    def read(self, checkpoint_id: int) -> dict[str, Any]:
        try:
            document = json.loads(self._path(checkpoint_id).read_text())
        except (OSError, ValueError) as exc:
            raise SerializationError(f"cannot read checkpoint {checkpoint_id} in {self.directory}: "
                                     f"{exc}") from exc
        if document.get("version") != CHECKPOINT_VERSION:
            raise SerializationError(f"checkpoint {checkpoint_id} has unknown version "
                                     f"{document.get('version')!r}")
        return document

    def latest(self) -> Optional[dict[str, Any]]:
        """The newest complete checkpoint, or None when the directory holds none."""
        ids = self.ids()
        return self.read(ids[-1]) if ids else None
