"""The two-phase dataset sink: nothing visible before commit, recovery publishes exactly the restored
checkpoint's files and drops later ones."""
import pyarrow as pa
import pyarrow.parquet as pq

from fastsource.io.sink import ParquetDatasetSink


def batch(values):
    return pa.record_batch([pa.array(values, pa.int64())], names=["v"])


def read(sink):
    return sorted(v for f in sink.files() for v in pq.read_table(f).column("v").to_pylist())


def test_files_become_visible_only_on_commit(tmp_path):
    sink = ParquetDatasetSink(tmp_path)
    sink.write(batch([1, 2]))
    sink.pre_commit(1)
    assert read(sink) == []
    sink.commit(1)
    assert read(sink) == [1, 2]


def test_recovery_keeps_the_restored_checkpoint_and_drops_later_work(tmp_path):
    sink = ParquetDatasetSink(tmp_path, max_rows_per_file=2)
    sink.write(batch([1, 2]))
    sink.write(batch([3]))
    sink.pre_commit(1)          # crash after the checkpoint was written, before commit
    sink.write(batch([4]))
    sink.pre_commit(2)          # crash before checkpoint 2 was written
    sink.write(batch([5]))      # in progress at the crash
    restarted = ParquetDatasetSink(tmp_path)
    restarted.recover(restored_checkpoint_id=1)
    assert read(restarted) == [1, 2, 3]
    assert not any((tmp_path / "_pending").iterdir()) and not any((tmp_path / "_in-progress").iterdir())


def test_close_discards_uncommitted_rows(tmp_path):
    sink = ParquetDatasetSink(tmp_path)
    sink.write(batch([1]))
    sink.close()
    assert read(sink) == [] and not any((tmp_path / "_in-progress").iterdir())


def test_a_failed_checkpoint_retried_under_the_same_id_keeps_every_pending_file(tmp_path):
    sink = ParquetDatasetSink(tmp_path)
    sink.write(batch([1, 2]))
    sink.pre_commit(1)
    sink.commit(1)
    sink.write(batch([3, 4]))
    sink.pre_commit(2)          # then writing checkpoint 2 fails: nothing is committed
    sink.write(batch([5, 6]))
    sink.pre_commit(2)          # the retry has the same id
    sink.commit(2)
    assert read(sink) == [1, 2, 3, 4, 5, 6]


def test_a_pre_commit_that_fails_half_way_is_completed_by_the_next(tmp_path, monkeypatch):
    import os

    sink = ParquetDatasetSink(tmp_path, max_rows_per_file=1)
    sink.write(batch([1]))
    sink.write(batch([2]))
    replace, calls = os.replace, []

    def fail_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("disk full")
        replace(src, dst)

    monkeypatch.setattr("fastsource.io.sink.os.replace", fail_second)
    try:
        sink.pre_commit(1)
    except OSError:
        pass
    monkeypatch.setattr("fastsource.io.sink.os.replace", replace)
    sink.pre_commit(1)
    sink.commit(1)
    assert read(sink) == [1, 2]


def test_a_staging_dir_keeps_unpublished_files_out_of_the_directory(tmp_path):
    out, staging = tmp_path / "out", tmp_path / ".out.fastsource"
    sink = ParquetDatasetSink(out, staging_dir=staging)
    sink.write(batch([1, 2]))
    sink.pre_commit(1)
    assert list(out.iterdir()) == [] and len(list((staging / "_pending").iterdir())) == 1
    sink.commit(1)
    assert [p.name for p in out.iterdir()] == ["part-000000000001-000000.parquet"]
    assert read(sink) == [1, 2]
