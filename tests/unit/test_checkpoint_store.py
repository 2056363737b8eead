"""Checkpoints are atomic: only complete files count, newest wins, old ones are pruned."""
import pytest

from fastsource.runtime.checkpoint import CheckpointStore
from fastsource.errors import SerializationError


def test_latest_complete_checkpoint_wins_and_partial_files_are_ignored(tmp_path):
    store = CheckpointStore(tmp_path, retain=2)
    assert store.latest() is None
    for i in (1, 2, 3):
        store.write(i, {"splits": [i]})
    (tmp_path / ".chk-partial.tmp").write_text('{"version": 1, "checkpoint_id": 4')
    assert store.latest()["splits"] == [3]
    assert store.ids() == [2, 3]
    assert store.next_id() == 4


def test_unknown_version_is_rejected(tmp_path):
    (tmp_path / "chk-000000000001.json").write_text('{"version": 7}')
    with pytest.raises(SerializationError, match="version 7"):
        CheckpointStore(tmp_path).latest()
