"""Paths that used to lose or change data without a word (issue 18): each now either does the right
thing or fails naming what and where. Against the real broker the suite starts."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fastsource as fs

FN_INT = fs.formats.Function(lambda raw: raw.cast(pa.string()).cast(pa.int64()), pa.int64())


def produce(producer, topic, values, partition=0):
    for value in values:
        producer.produce(topic, value if isinstance(value, bytes) else str(value).encode(),
                         partition=partition)
    producer.flush(30)


# ---------------------------------------------------------------- 1. recreated topics

def read_values(stream) -> list[int]:
    return [v for batch in stream for v in batch.column("value").to_pylist()]


@pytest.mark.timeout(120)
def test_a_topic_recreated_since_the_checkpoint_fails_the_restore_naming_both_ids(
        bootstrap, make_topic, producer, tmp_path, recreate_topic):
    topic = make_topic()
    produce(producer, topic, range(100))
    source = fs.KafkaSource(bootstrap, topics=[topic], value_format=FN_INT)
    with source.open(checkpoint_dir=tmp_path) as stream:
        assert read_values(stream) == list(range(100))
        stream.checkpoint()
    recreate_topic(topic)
    produce(producer, topic, range(1000, 1150))
    with pytest.raises(fs.TopicRecreatedError, match=f"topic '{topic}' was deleted and created again "
                       "since the checkpoint: its id was ") as info:
        with source.open(checkpoint_dir=tmp_path) as stream:
            read_values(stream)
    assert info.value.old_id != info.value.new_id and info.value.old_id in str(info.value)
    assert info.value.new_id in str(info.value) and 'on_topic_recreated="earliest"' in str(info.value)
    again = fs.KafkaSource(bootstrap, topics=[topic], value_format=FN_INT, on_topic_recreated="earliest")
    with again.open(checkpoint_dir=tmp_path) as stream:
        assert read_values(stream) == list(range(1000, 1150))
        stream.checkpoint()
    with again.open(checkpoint_dir=tmp_path) as stream:
        assert read_values(stream) == []


@pytest.mark.timeout(120)
def test_the_cli_rerun_of_a_dataset_refuses_a_recreated_topic(bootstrap, make_topic, producer, tmp_path,
                                                              recreate_topic):
    topic = make_topic()
    produce(producer, topic, range(50))
    cmd = [sys.executable, "-m", "fastsource", "read", "-b", bootstrap, "-t", topic,
           "-o", str(tmp_path / "ds"), "--no-progress"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert first.returncode == 0, first.stderr
    recreate_topic(topic)
    produce(producer, topic, range(20))
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert rerun.returncode != 0
    assert f"topic '{topic}' was deleted and created again since the checkpoint" in rerun.stderr
    assert "--on-topic-recreated earliest" in rerun.stderr
    again = subprocess.run(cmd + ["--on-topic-recreated", "earliest"], capture_output=True, text=True,
                           timeout=90)
    assert again.returncode == 0, again.stderr
    table = pq.read_table(tmp_path / "ds")
    assert table.num_rows == 70  # the 50 of the old topic, then the 20 of the new one from its start
    assert table.column("offset").to_pylist()[-20:] == list(range(20))


@pytest.mark.timeout(120)
def test_a_topic_recreated_while_a_stream_reads_it_fails_the_stream(bootstrap, make_topic, producer,
                                                                     recreate_topic):
    topic = make_topic()
    produce(producer, topic, range(10))
    source = fs.KafkaSource(bootstrap, topics=[topic], stopping_offsets=None, value_format=FN_INT)
    with source.open() as stream:
        got = []
        while len(got) < 10:
            batch = stream.poll(1.0)
            got += batch.column("value").to_pylist() if batch is not None else []
        recreate_topic(topic)
        produce(producer, topic, range(100, 130))
        deadline = time.monotonic() + 60
        with pytest.raises(fs.TopicRecreatedError, match="created again while reading"):
            while time.monotonic() < deadline:
                stream.poll(0.5)


# ---------------------------------------------------------------- 2. several threads on one stream

@pytest.mark.timeout(180)
def test_two_threads_polling_one_stream_get_every_record_exactly_once(bootstrap, make_topic, producer):
    topic = make_topic(partitions=4)
    for p in range(4):
        produce(producer, topic, range(p * 10000, p * 10000 + 10000), partition=p)
    source = fs.KafkaSource(bootstrap, topics=[topic], value_format=FN_INT,
                            batch_limits=fs.BatchLimits(max_rows=7))
    got: list[list[int]] = [[], []]
    errors: list[BaseException] = []
    with source.open(parallelism=2, checkpoint_dir=None) as stream:
        def consume(mine: list[int]) -> None:
            try:
                for batch in stream:
                    mine.extend(batch.column("value").to_pylist())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=consume, args=(got[i],)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
    assert not errors, errors
    assert got[0] and got[1]  # both threads took part
    assert sorted(got[0] + got[1]) == list(range(40000))


# ---------------------------------------------------------------- 3. one process per directory

LOCK_HOLDER = """
import sys, time, fastsource as fs
source = fs.KafkaSource(sys.argv[1], topics=[sys.argv[2]], stopping_offsets=None)
with source.open(checkpoint_dir=sys.argv[3]) as stream:
    print("open", flush=True)
    time.sleep(600)
"""


@pytest.mark.timeout(120)
def test_a_second_process_on_a_checkpoint_directory_is_refused_until_the_holder_dies(
        bootstrap, make_topic, tmp_path):
    topic = make_topic()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, bootstrap, topic, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        source = fs.KafkaSource(bootstrap, topics=[topic], stopping_offsets=None)
        with pytest.raises(fs.DirectoryLockedError, match=f"{tmp_path} .checkpoint directory. is in use "
                           f"by pid {holder.pid} on host ") as info:
            source.open(checkpoint_dir=tmp_path)
        assert os.uname().nodename in str(info.value)
        cli = subprocess.run([sys.executable, "-m", "fastsource", "read", "-b", bootstrap, "-t", topic,
                              "--checkpoint-dir", str(tmp_path), "--no-progress"],
                             capture_output=True, text=True, timeout=60)
        assert cli.returncode != 0 and f"in use by pid {holder.pid}" in cli.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    with source.open(checkpoint_dir=tmp_path) as stream:  # the OS released the dead holder's lock
        assert stream.poll(0.1) is None
    with source.open(checkpoint_dir=tmp_path):  # and a closed stream releases it too
        pass


# ---------------------------------------------------------------- 4. one JSON type

@pytest.mark.timeout(240)
def test_json_without_schema_gives_one_type_whatever_the_parallelism_and_order(
        bootstrap, make_topic, producer):
    """Partition 0 holds integers, partition 1 fractions; before, whichever reader's batch came
    first pinned the type and the other failed to convert (or each reader had its own)."""
    topic = make_topic(partitions=2)
    produce(producer, topic, [json.dumps({"x": i}).encode() for i in range(300)], partition=0)
    produce(producer, topic, [json.dumps({"x": i + 0.5, "y": "s"}).encode() for i in range(300)],
            partition=1)
    expected = pa.struct([("x", pa.float64()), ("y", pa.string())])
    for parallelism in (1, 2, 3):
        for partitions in ([(topic, 0), (topic, 1)], [(topic, 1), (topic, 0)]):
            source = fs.KafkaSource(bootstrap, partitions=partitions, value_format=fs.formats.Json(),
                                    batch_limits=fs.BatchLimits(max_rows=50))
            table = source.read_all(parallelism=parallelism)
            assert table.schema.field("value").type == expected, (parallelism, partitions)
            assert table.num_rows == 600
            assert sorted(v["x"] for v in table.column("value").to_pylist()) == sorted(
                [float(i) for i in range(300)] + [i + 0.5 for i in range(300)])
    for first in (0, 1):  # a stream pins the first batch's type, whichever partition it came from
        source = fs.KafkaSource(bootstrap, partitions=[(topic, first)], value_format=fs.formats.Json())
        with source.open(parallelism=2) as stream:
            types = {batch.schema.field("value").type.field("x").type for batch in stream}
        assert types == {pa.float64()}


# ---------------------------------------------------------------- 5. read_all's dead letters

@pytest.mark.timeout(120)
def test_read_all_dead_letters_are_returned_or_counted_in_a_warning(bootstrap, make_topic, producer):
    topic = make_topic()
    produce(producer, topic, [b"ok", b"\xff", b"fine", b"\xfe\xfe", b"good"])
    source = fs.KafkaSource(bootstrap, topics=[topic], value_format=fs.formats.String(errors="dead_letter"))
    with pytest.warns(fs.DeadLettersWarning, match="left out 2 undecodable record"):
        table = source.read_all(parallelism=2)
    assert table.column("value").to_pylist() == ["ok", "fine", "good"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table, dead = source.read_all(parallelism=2, return_dead_letters=True)
    assert table.num_rows == 3
    assert dead.column("offset").to_pylist() == [1, 3]  # in offset order, whichever reader had them
    assert dead.column("value").to_pylist() == [b"\xff", b"\xfe\xfe"]


# ---------------------------------------------------------------- 6. max_bytes

@pytest.mark.timeout(120)
def test_max_bytes_holds_for_large_records(bootstrap, make_topic, producer):
    topic = make_topic()
    sizes = [300_000, 900_000, 3_000_000, 100, 200, 1_500_000, 800_000, 800_000, 10]
    produce(producer, topic, [bytes([65 + i]) * n for i, n in enumerate(sizes)])
    limit = 1 << 20
    source = fs.KafkaSource(bootstrap, topics=[topic], batch_limits=fs.BatchLimits(max_bytes=limit),
                            properties={"receive.message.max.bytes": str(64 << 20)})
    with source.open() as stream:
        batches = [[len(v) for v in batch.column("value").to_pylist()] for batch in stream]
    assert [n for batch in batches for n in batch] == sizes
    for batch in batches:
        assert sum(batch) <= limit or len(batch) == 1, batches


# ---------------------------------------------------------------- 9. damaged checkpoints

def checkpointed(bootstrap, topic, directory, values):
    source = fs.KafkaSource(bootstrap, topics=[topic], value_format=FN_INT, stopping_offsets=None,
                            batch_limits=fs.BatchLimits(max_rows=10))
    with source.open(checkpoint_dir=directory) as stream:
        got = []
        for batch in stream:
            got += batch.column("value").to_pylist()
            if len(got) in values:
                stream.checkpoint()
            if len(got) >= max(values):
                break
    return source


@pytest.mark.timeout(120)
@pytest.mark.parametrize("damage, field", [
    (lambda d: d["splits"][0].update(starting_offset=-5), "splits[0].starting_offset is -5, below 0"),
    (lambda d: d["splits"][0].update(starting_offset=10), "splits[0].starting_offset is 10, lower than 20"),
    (lambda d: d.update(splits=[]), "splits has no split for "),
    (lambda d: d["splits"][0].update(partition="0"), "splits[0].partition is '0', not an integer"),
    (lambda d: d["enumerator"].update(known_partitions={}), "enumerator.known_partitions is {}, not a list"),
])
def test_damaged_checkpoint_contents_are_refused_naming_file_and_field_and_the_previous_can_be_used(
        bootstrap, make_topic, producer, tmp_path, damage, field):
    topic = make_topic()
    produce(producer, topic, range(100))
    source = checkpointed(bootstrap, topic, tmp_path, {20, 30})
    newest = sorted(tmp_path.glob("chk-*.json"))[-1]
    document = json.loads(newest.read_text())
    damage(document)
    newest.write_text(json.dumps(document))
    with pytest.raises(fs.SerializationError, match="restore=\"latest-intact\"") as info:
        source.open(checkpoint_dir=tmp_path)
    assert str(newest) in str(info.value) and field in str(info.value)
    with source.open(checkpoint_dir=tmp_path, restore="latest-intact") as stream:
        assert stream.restored_checkpoint_id == 1
        first = stream.poll(30)
        assert first.column("value").to_pylist()[0] == 20
    cli = subprocess.run([sys.executable, "-m", "fastsource", "read", "-b", bootstrap, "-t", topic,
                          "--checkpoint-dir", str(tmp_path), "--to", "latest", "-c", "5",
                          "--restore", "latest-intact", "--no-progress"],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert [json.loads(line)["offset"] for line in cli.stdout.splitlines()] == list(range(20, 25))


# ---------------------------------------------------------------- 14. watermark at the end

@pytest.mark.timeout(60)
def test_a_bounded_stream_ends_with_the_watermark_at_the_end(bootstrap, make_topic, producer):
    topic = make_topic(partitions=3)
    for p in range(3):
        produce(producer, topic, range(5), partition=p)
    source = fs.KafkaSource(bootstrap, topics=[topic])
    with source.open(parallelism=2) as stream:
        rows = sum(batch.num_rows for batch in stream)
        assert rows == 15 and stream.ended
        assert stream.watermark() == fs.MAX_WATERMARK
