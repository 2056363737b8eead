"""Checkpoints are atomic: only complete files count, newest wins, old ones are pruned."""
import pytest

from fastsource.runtime.checkpoint import CheckpointStore
from fastsource.errors import SerializationError


def test_latest_complete_checkpoint_wins_and_partial_files_are_ignored(tmp_path):
    store = CheckpointStore(tmp_path, retain=2)
    assert store.latest() is None
    for i in (1, 2, 3):
        store.write(i, {"enumerator": {}, "splits": [i]})
    (tmp_path / ".chk-partial.tmp").write_text('{"version": 1, "checkpoint_id": 4')
    assert store.latest()["splits"] == [3]
    assert store.ids() == [2, 3]
    assert store.next_id() == 4


def test_unknown_version_is_rejected(tmp_path):
    (tmp_path / "chk-000000000001.json").write_text('{"version": 7}')
    with pytest.raises(SerializationError, match="version 7"):
        CheckpointStore(tmp_path).latest()


@pytest.mark.parametrize("content, problem", [
    ('{"version": 1, "checkpoint_id": 1, "enume', "cannot read checkpoint file"),
    ("", "cannot read checkpoint file"),
    ("[1, 2]", "holds a JSON list, not an object"),
    ('{"version": 1, "checkpoint_id": 1, "splits": []}', "lacks 'enumerator'"),
    ('{"version": 1, "checkpoint_id": 1, "enumerator": {}, "splits": {}}', "has a dict as 'splits'"),
    ('{"version": 1, "checkpoint_id": 2, "enumerator": {}, "splits": []}', "holds checkpoint 2, not 1"),
    ("[" * 100_000, "cannot read checkpoint file"),
])
def test_a_corrupt_checkpoint_file_is_named_with_what_is_wrong(tmp_path, content, problem):
    path = tmp_path / "chk-000000000001.json"
    path.write_text(content)
    with pytest.raises(SerializationError, match=problem) as info:
        CheckpointStore(tmp_path).latest()
    assert str(path) in str(info.value)


def test_temporary_files_left_by_a_crash_are_deleted_on_open(tmp_path):
    (tmp_path / ".chk-abc.tmp").write_text('{"version": 1')
    (tmp_path / "unrelated.tmp").write_text("keep")
    CheckpointStore(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unrelated.tmp"]


def test_a_failed_write_is_a_checkpoint_error_naming_the_file(tmp_path, monkeypatch):
    from fastsource.errors import CheckpointError, FastsourceError

    store = CheckpointStore(tmp_path)

    def unwritable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("fastsource.runtime.checkpoint.tempfile.mkstemp", unwritable)
    with pytest.raises(CheckpointError, match="chk-000000000001.json") as info:
        store.write(1, {"enumerator": {}, "splits": []})
    assert isinstance(info.value, FastsourceError) and not list(tmp_path.iterdir())


def test_a_file_where_the_directory_should_be_is_a_checkpoint_error(tmp_path):
    from fastsource.errors import CheckpointError

    (tmp_path / "chk").write_text("")
    with pytest.raises(CheckpointError, match="checkpoint directory"):
        CheckpointStore(tmp_path / "chk")
