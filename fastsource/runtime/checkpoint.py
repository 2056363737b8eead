"""Checkpoint storage: the enumerator's state and every reader's splits, written atomically per id."""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Optional

from fastsource.errors import CheckpointError, SerializationError

CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^chk-(\d{12})\.json$")


class CheckpointStore:
    """A directory of `chk-<id>.json` files. A checkpoint exists only once its file is complete: it is
    written to a temporary file, flushed to disk and renamed into place, so a crash mid-write never
    leaves a partial checkpoint that a restore would take. Older checkpoints beyond `retain` are
    deleted after a new one is durable. Temporary files left by a crash mid-write are deleted when
    the store is opened (one stream per directory)."""

    def __init__(self, directory: str | os.PathLike, retain: int = 3) -> None:
        self.directory = Path(directory)
        self.retain = max(1, retain)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for leftover in self.directory.glob(".chk-*.tmp"):
                leftover.unlink(missing_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot use {self.directory} as the checkpoint directory: {exc}") from exc

    def ids(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _NAME.match(p.name)))

    def _path(self, checkpoint_id: int) -> Path:
        return self.directory / f"chk-{checkpoint_id:012d}.json"

    def next_id(self) -> int:
        ids = self.ids()
        return ids[-1] + 1 if ids else 1

    def write(self, checkpoint_id: int, state: dict[str, Any]) -> Path:
        """Durably store `state` under `checkpoint_id`; a CheckpointError names the file when it fails."""
        document = {"version": CHECKPOINT_VERSION, "checkpoint_id": checkpoint_id, **state}
        path = self._path(checkpoint_id)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".chk-", suffix=".tmp", dir=self.directory)
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(document, out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise CheckpointError(f"cannot write checkpoint {checkpoint_id} to {path}: {exc}") from exc
        for old in self.ids()[:-self.retain]:
            self._path(old).unlink(missing_ok=True)
        return path

    def read(self, checkpoint_id: int) -> dict[str, Any]:
        """The checkpoint stored under `checkpoint_id`; a SerializationError names the file and what is
        wrong with it (unreadable, not JSON, truncated, another version, a key missing or mistyped)."""
        path = self._path(checkpoint_id)
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as exc:
            raise SerializationError(f"cannot read checkpoint file {path}: {exc}") from exc
        if not isinstance(document, dict):
            raise SerializationError(f"checkpoint file {path} holds a JSON {type(document).__name__}, "
                                     "not an object")
        if document.get("version") != CHECKPOINT_VERSION:
            raise SerializationError(f"checkpoint file {path} has unknown version "
                                     f"{document.get('version')!r}")
        for key, kind in (("checkpoint_id", int), ("enumerator", dict), ("splits", list)):
            if not isinstance(document.get(key), kind):
                what = "lacks" if key not in document else f"has a {type(document[key]).__name__} as"
                raise SerializationError(f"checkpoint file {path} {what} {key!r} (a JSON "
                                         f"{'number' if kind is int else 'object' if kind is dict else 'array'} "
                                         "expected)")
        if document["checkpoint_id"] != checkpoint_id:
            raise SerializationError(f"checkpoint file {path} holds checkpoint "
                                     f"{document['checkpoint_id']}, not {checkpoint_id}")
        return document

    def latest(self) -> Optional[dict[str, Any]]:
        """The newest complete checkpoint, or None when the directory holds none."""
        ids = self.ids()
        return self.read(ids[-1]) if ids else None
