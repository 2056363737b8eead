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


def old_checkpoint(enumerator_version: int) -> dict:
    """A checkpoint as fastsource wrote it before topic ids (enumerator state 2) or before partition
    ends (state 1, split serializer 1)."""
    split_v1 = {"version": 1, "topic": "events", "partition": 0, "starting_offset": 5,
                "stopping_offset": None}
    enumerator = {"version": enumerator_version, "known_partitions": [["events", 0]],
                  "pending_splits": [], "initial_discovery_done": True}
    if enumerator_version >= 2:
        enumerator["partition_ends"] = [["events", 0, None]]
    return {"enumerator": enumerator, "splits": [split_v1]}


@pytest.mark.parametrize("version", [1, 2])
def test_checkpoints_written_before_topic_ids_still_restore(tmp_path, version):
    store = CheckpointStore(tmp_path)
    store.write(1, old_checkpoint(version))
    assert store.restore_point()["splits"][0]["starting_offset"] == 5


def test_restore_point_compares_positions_with_the_previous_checkpoint_only_for_one_topic_id(tmp_path):
    store = CheckpointStore(tmp_path)
    first = old_checkpoint(2)
    first["enumerator"].update(version=3, topic_ids={"events": "old"})
    first["splits"][0]["starting_offset"] = 50
    store.write(1, first)
    lowered = old_checkpoint(2)
    lowered["enumerator"].update(version=3, topic_ids={"events": "old"})
    store.write(2, lowered)
    with pytest.raises(SerializationError, match=r"chk-000000000002.json is damaged: splits\[0\]."
                       r"starting_offset is 5, lower than 50 in the previous checkpoint"):
        store.restore_point()
    lowered["enumerator"]["topic_ids"] = {"events": "new"}  # the topic was recreated in between
    store.write(2, lowered)
    assert store.restore_point()["checkpoint_id"] == 2


def test_a_directory_lock_is_exclusive_and_names_its_holder(tmp_path):
    import os

    from fastsource.errors import DirectoryLockedError
    from fastsource.runtime.checkpoint import DirectoryLock

    with DirectoryLock(tmp_path, "checkpoint directory"):
        with pytest.raises(DirectoryLockedError, match=f"in use by pid {os.getpid()} on host"):
            DirectoryLock(tmp_path, "checkpoint directory")
    DirectoryLock(tmp_path, "checkpoint directory").release()  # free again once released
