"""Checkpoint storage: the enumerator's state and every reader's splits, written atomically per id."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any, Optional

from fastsource.errors import CheckpointError, DirectoryLockedError, SerializationError

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^chk-(\d{12})\.json$")
LOCK_FILE = ".fastsource.lock"
RESTORE_MODES = ("latest", "latest-intact")


class DirectoryLock:
    """An exclusive lock on a directory for as long as one stream or CLI read uses it: `flock` on a
    lock file inside it, so the operating system releases it when the holder's process ends, however
    it ends. The holder writes its pid and host into the file; a second opener gets a
    `DirectoryLockedError` naming the directory and that holder."""

    def __init__(self, directory: str | os.PathLike, what: str) -> None:
        self.directory = Path(directory)
        path = self.directory / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise CheckpointError(f"cannot lock {self.directory} ({what}): {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise DirectoryLockedError(
                f"{self.directory} ({what}) is in use by {holder}: one stream or read at a time per "
                "directory; wait for it to end or use another directory") from None
        except OSError as exc:
            os.close(fd)
            raise CheckpointError(f"cannot lock {self.directory} ({what}): {exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}".encode(), 0)
        self._fd: Optional[int] = fd

    def __enter__(self) -> "DirectoryLock":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def release(self) -> None:
        """Let the next opener in (idempotent); the lock file stays, empty of a holder."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)


class CheckpointStore:
    """A directory of `chk-<id>.json` files. A checkpoint exists only once its file is complete: it is
    written to a temporary file, flushed to disk and renamed into place, so a crash mid-write never
    leaves a partial checkpoint that a restore would take. Older checkpoints beyond `retain` are
    deleted after a new one is durable. Temporary files left by a crash mid-write are deleted when
    the store is opened. With `lock=True` the store holds the directory's `DirectoryLock` (released
    by `directory_lock.release()` or when the process ends), taken before anything is deleted."""

    def __init__(self, directory: str | os.PathLike, retain: int = 3, lock: bool = False) -> None:
        self.directory = Path(directory)
        self.retain = max(1, retain)
        self.directory_lock: Optional[DirectoryLock] = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot use {self.directory} as the checkpoint directory: {exc}") from exc
        if lock:
            self.directory_lock = DirectoryLock(self.directory, "checkpoint directory")
        try:
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

    def restore_point(self, mode: str = "latest") -> Optional[dict[str, Any]]:
        """The checkpoint to restore from, its contents validated (`validate_contents`), or None when
        the directory holds none. `"latest"`: the newest, and a `SerializationError` naming its file
        and field when it is damaged; `"latest-intact"`: the newest intact one, each newer damaged
        file named in a warning (it is left in place), and the error of the newest when none is
        intact."""
        if mode not in RESTORE_MODES:
            raise ValueError(f"restore must be one of {RESTORE_MODES}, not {mode!r}")
        ids = self.ids()
        first_error: Optional[SerializationError] = None
        for position in range(len(ids) - 1, -1, -1):
            try:
                document = self.read(ids[position])
                validate_contents(document, self._path(ids[position]), self._previous(ids[:position]))
                return document
            except SerializationError as exc:
                if mode == "latest":
                    raise SerializationError(
                        f"{exc}; to restore from the previous intact checkpoint instead, open with "
                        f"restore=\"latest-intact\" (--restore latest-intact on the command line), or "
                        f"move this file out of {self.directory}"
                    ) from exc
                first_error = first_error or exc
                log.warning("skipping damaged checkpoint (restore=\"latest-intact\"): %s", exc)
        if first_error is not None:
            raise SerializationError(f"no intact checkpoint in {self.directory}; the newest: "
                                     f"{first_error}") from first_error
        return None

    def _previous(self, older: list[int]) -> Optional[tuple[Path, dict[str, Any]]]:
        """The newest of `older` that reads and whose contents are sound, to compare offsets with."""
        for checkpoint_id in reversed(older):
            try:
                document = self.read(checkpoint_id)
                validate_contents(document, self._path(checkpoint_id), None)
            except SerializationError:
                continue
            return self._path(checkpoint_id), document
        return None


def _damaged(path: Path, field: str, what: str) -> SerializationError:
    return SerializationError(f"checkpoint file {path} is damaged: {field} {what}")


def _check_int(path: Path, field: str, value: Any, minimum: int = 0, optional: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) is not int:
        raise _damaged(path, field, f"is {value!r}, not an integer")
    if value < minimum:
        raise _damaged(path, field, f"is {value}, below {minimum}")


def _check_split(path: Path, field: str, data: Any) -> tuple[str, str, int, int]:
    """A serialized split's fields; returns (id, topic, partition, starting offset)."""
    if not isinstance(data, dict):
        raise _damaged(path, field, f"is a JSON {type(data).__name__}, not an object")
    if data.get("version") not in (1, 2):
        raise _damaged(path, f"{field}.version", f"is {data.get('version')!r}, not 1 or 2")
    topic = data.get("topic")
    if not isinstance(topic, str) or not topic:
        raise _damaged(path, f"{field}.topic", f"is {topic!r}, not a topic name")
    _check_int(path, f"{field}.partition", data.get("partition"))
    _check_int(path, f"{field}.starting_offset", data.get("starting_offset"))
    _check_int(path, f"{field}.stopping_offset", data.get("stopping_offset"),
               minimum=data["starting_offset"], optional=True)
    split_id = data.get("id", f"{topic}-{data['partition']}")
    if not isinstance(split_id, str) or not split_id:
        raise _damaged(path, f"{field}.id", f"is {split_id!r}, not a split id")
    return split_id, topic, data["partition"], data["starting_offset"]


def validate_contents(document: dict[str, Any], path: Path,
                      previous: Optional[tuple[Path, dict[str, Any]]]) -> None:
    """Refuse damaged contents with a `SerializationError` naming `path` and the field: offsets that
    are negative or not integers, a stopping offset before its start, malformed partitions, a
    partition of an unbounded read that no split covers (unbounded splits never finish), and a
    position lower than in `previous` (the older checkpoint beside it) for the same split of the same
    topic incarnation (positions only move forward)."""
    enumerator = document["enumerator"]
    version = enumerator.get("version")
    if version not in (1, 2, 3):
        raise _damaged(path, "enumerator.version", f"is {version!r}, not 1, 2 or 3")
    if not isinstance(enumerator.get("initial_discovery_done"), bool):
        raise _damaged(path, "enumerator.initial_discovery_done",
                       f"is {enumerator.get('initial_discovery_done')!r}, not true or false")
    for key in ("known_partitions", "pending_splits") + (("partition_ends",) if version >= 2 else ()):
        if not isinstance(enumerator.get(key), list):
            raise _damaged(path, f"enumerator.{key}", f"is {enumerator.get(key)!r}, not a list")
    topic_ids = enumerator.get("topic_ids", {})
    if not isinstance(topic_ids, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in topic_ids.items()):
        raise _damaged(path, "enumerator.topic_ids", f"is {topic_ids!r}, not topic names to ids")
    known = set()
    for i, item in enumerate(enumerator["known_partitions"]):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise _damaged(path, f"enumerator.known_partitions[{i}]", f"is {item!r}, not [topic, partition]")
        _check_int(path, f"enumerator.known_partitions[{i}]", item[1])
        known.add((item[0], item[1]))
    ends = {}
    for i, item in enumerate(enumerator.get("partition_ends", [])):
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
            raise _damaged(path, f"enumerator.partition_ends[{i}]", f"is {item!r}, not [topic, partition, end]")
        _check_int(path, f"enumerator.partition_ends[{i}]", item[1])
        _check_int(path, f"enumerator.partition_ends[{i}]", item[2], optional=True)
        ends[(item[0], item[1])] = item[2]
    positions: dict[str, tuple[str, int, str]] = {}
    covered = set()
    for field, items in (("enumerator.pending_splits", enumerator["pending_splits"]),
                         ("splits", document["splits"])):
        for i, data in enumerate(items):
            split_id, topic, partition, start = _check_split(path, f"{field}[{i}]", data)
            positions[split_id] = (f"{field}[{i}].starting_offset", start, topic)
            covered.add((topic, partition))
    if version >= 2 and enumerator["initial_discovery_done"]:
        for topic, partition in sorted(known - covered):
            if (topic, partition) in ends and ends[(topic, partition)] is None:
                raise _damaged(path, "splits", f"has no split for {topic}[{partition}], a partition of "
                               "an unbounded read (its split never finishes)")
    if previous is None:
        return
    old_path, old = previous
    old_ids = old["enumerator"].get("topic_ids", {}) if isinstance(old.get("enumerator"), dict) else {}
    for field, items in (("enumerator.pending_splits", old["enumerator"].get("pending_splits", [])),
                         ("splits", old["splits"])):
        for data in items:
            split_id = data.get("id", f"{data.get('topic')}-{data.get('partition')}")
            if split_id not in positions:
                continue
            where, start, topic = positions[split_id]
            if old_ids.get(topic) != topic_ids.get(topic):
                continue  # another incarnation of the topic: its offsets start afresh
            if start < data["starting_offset"]:
                raise _damaged(path, where, f"is {start}, lower than {data['starting_offset']} in "
                               f"the previous checkpoint {old_path} (positions only move forward)")
