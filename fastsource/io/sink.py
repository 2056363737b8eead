"""Exactly-once file output: a Parquet dataset directory whose files become visible atomically when
the checkpoint that covers their records completes."""
from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path
from typing import Any, Optional

import pyarrow as pa

from fastsource.errors import ConfigError
from fastsource.validation import check_int, check_path

log = logging.getLogger(__name__)

_PENDING = re.compile(r"^part-(\d{12})-(\d{6})\.parquet$")
_COMPRESSIONS = ("none", "snappy", "gzip", "brotli", "lz4", "zstd")


class ParquetDatasetSink:
    """Writes batches to rolling Parquet files in `directory`, in two phases.

    Rows go to an in-progress file (`_in-progress/`). Before a checkpoint is written the file is closed
    and moved to `_pending/` under the checkpoint's id (`pre_commit`); once the checkpoint is durable,
    its pending files are renamed into `directory` (`commit`). After a crash, `recover` publishes the
    pending files of the checkpoint the stream restored from and deletes everything later, so the
    visible files hold every record exactly once. Files also roll within a checkpoint interval after
    `max_rows_per_file` rows. Attach it to a stream with `SourceStream.attach(sink)`.

    `staging_dir` holds `_in-progress/` and `_pending/` (default: `directory` itself). Readers that
    walk a directory recursively (Polars, DuckDB's `**` globs) see only the published files when it is
    outside `directory`; it must be on the same file system, since files are published by renaming.
    """

    def __init__(self, directory: str | os.PathLike, max_rows_per_file: int = 1_000_000,
                 compression: str = "zstd", staging_dir: str | os.PathLike | None = None) -> None:
        check_path("directory", directory)
        check_path("staging_dir", staging_dir, optional=True)
        check_int("max_rows_per_file", max_rows_per_file, minimum=1)
        if not isinstance(compression, str) or compression.lower() not in _COMPRESSIONS:
            raise ConfigError(f"compression must be one of {', '.join(_COMPRESSIONS)}, not {compression!r}")
        self.directory = Path(directory)
        self.max_rows_per_file = max_rows_per_file
        self.compression = compression
        staging = self.directory if staging_dir is None else Path(staging_dir)
        self._in_progress = staging / "_in-progress"
        self._pending = staging / "_pending"
        for folder in (self.directory, self._in_progress, self._pending):
            folder.mkdir(parents=True, exist_ok=True)
        self._writer: Optional[Any] = None  # a pyarrow.parquet.ParquetWriter
        self._path: Optional[Path] = None
        self._rows_in_file = 0
        self._closed_files: list[Path] = []

    def recover(self, restored_checkpoint_id: Optional[int]) -> None:
        """Publish what the restored checkpoint covers; drop everything written after it."""
        for leftover in self._in_progress.iterdir():
            leftover.unlink()
        for pending in sorted(self._pending.iterdir()):
            match = _PENDING.match(pending.name)
            if match and restored_checkpoint_id is not None and int(match.group(1)) <= restored_checkpoint_id:
                os.replace(pending, self.directory / pending.name)
            else:
                pending.unlink()

    def write(self, batch: pa.RecordBatch) -> None:
        """Append a batch to the in-progress file (invisible until its checkpoint commits)."""
        if batch.num_rows == 0:
            return
        if self._writer is None:
            import pyarrow.parquet as pq  # imported on use, not with fastsource

            self._path = self._in_progress / f"{uuid.uuid4().hex}.parquet"
            self._writer = pq.ParquetWriter(self._path, batch.schema, compression=self.compression)
        self._writer.write_batch(batch)
        self._rows_in_file += batch.num_rows
        if self._rows_in_file >= self.max_rows_per_file:
            self._roll()

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._closed_files.append(self._path)
            self._writer, self._path, self._rows_in_file = None, None, 0

    def pre_commit(self, checkpoint_id: int) -> None:
        """Make the files written since the last checkpoint pending under `checkpoint_id` (durably).

        A checkpoint that failed after its pre-commit is retried under the same id: the files it left
        pending stay, and the retry numbers its own after them. Each file leaves the list of closed
        files only once it is pending, so a pre-commit that fails half way is completed by the next."""
        self._roll()
        seq = self._next_sequence(checkpoint_id)
        while self._closed_files:
            path = self._closed_files[0]
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            os.replace(path, self._pending / f"part-{checkpoint_id:012d}-{seq:06d}.parquet")
            self._closed_files.pop(0)
            seq += 1
        _fsync_dir(self._pending)

    def _next_sequence(self, checkpoint_id: int) -> int:
        """The first file number not yet taken by a pending file of `checkpoint_id`."""
        taken = [int(m.group(2)) for p in self._pending.iterdir()
                 if (m := _PENDING.match(p.name)) and int(m.group(1)) == checkpoint_id]
        return max(taken, default=-1) + 1

    def commit(self, checkpoint_id: int) -> None:
        """The checkpoint is durable: its pending files (and any older ones) become visible."""
        for pending in sorted(self._pending.iterdir()):
            match = _PENDING.match(pending.name)
            if match and int(match.group(1)) <= checkpoint_id:
                os.replace(pending, self.directory / pending.name)
        _fsync_dir(self.directory)

    def close(self) -> None:
        """Drop the uncommitted in-progress file: its records are not covered by a checkpoint."""
        if self._writer is not None:
            self._writer.close()
            self._path.unlink(missing_ok=True)
            self._writer = None
        for path in self._closed_files:
            path.unlink(missing_ok=True)
        self._closed_files = []

    def files(self) -> list[Path]:
        """The committed (visible) files, in checkpoint order."""
        return sorted(p for p in self.directory.iterdir() if _PENDING.match(p.name))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
