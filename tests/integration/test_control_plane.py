"""The FLIP-27 roles on the real broker: parallel readers, offsets initializers, checkpoints with
exactly-once restore after SIGKILL, and offset commits on checkpoint completion."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, TopicPartition

import fastsource as fs


def fill(producer, topic, partitions, per_partition, timestamp0=None):
    for p in range(partitions):
        for i in range(per_partition):
            kwargs = {"timestamp": timestamp0 + i} if timestamp0 is not None else {}
            producer.produce(topic, value=f"{p}:{i}".encode(), partition=p, **kwargs)
    producer.flush()


@pytest.mark.kfake
@pytest.mark.parametrize("parallelism", [1, 3])
def test_each_record_exactly_once_across_readers(bootstrap, make_topic, producer, parallelism,
                                                 any_transport):
    topic = make_topic(partitions=5)
    fill(producer, topic, 5, 400)
    table = fs.KafkaSource(bootstrap, topics=[topic]).read_all(parallelism=parallelism)
    seen = Counter(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))
    assert len(seen) == 2000 and set(seen.values()) == {1}


def test_read_all_reads_with_default_parallelism(bootstrap, make_topic, producer, monkeypatch):
    """Without a parallelism, read_all() spreads the partitions over default_parallelism() readers;
    every record arrives once and each partition keeps its order."""
    topic = make_topic(partitions=5)
    fill(producer, topic, 5, 200)
    opened = []
    real_open = fs.KafkaSource.open

    def spying_open(self, parallelism=1, checkpoint_dir=None):
        stream = real_open(self, parallelism, checkpoint_dir)
        opened.append(len(stream.readers))
        return stream

    monkeypatch.setattr(fs.KafkaSource, "open", spying_open)
    monkeypatch.setattr("fastsource.source.default_parallelism", lambda: 3)
    table = fs.KafkaSource(bootstrap, topics=[topic]).read_all()
    assert opened == [3]
    rows = list(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))
    assert len(rows) == 1000
    for p in range(5):
        assert [o for q, o in rows if q == p] == list(range(200))


def test_splits_are_spread_over_readers(bootstrap, make_topic, producer, any_transport):
    topic = make_topic(partitions=5)
    fill(producer, topic, 5, 10)
    with fs.KafkaSource(bootstrap, topics=[topic]).open(parallelism=3) as stream:
        list(stream)
        owned = [len(r.metrics()["finished_splits"]) for r in stream.readers]
    assert sorted(owned) == [1, 2, 2]


@pytest.mark.kfake
def test_offsets_initializers(bootstrap, make_topic, producer):
    topic = make_topic(partitions=2)
    fill(producer, topic, 2, 10, timestamp0=1_000_000)

    def offsets(**kwargs):
        table = fs.KafkaSource(bootstrap, topics=[topic], **kwargs).read_all()
        return sorted(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))

    OI = fs.OffsetsInitializer
    assert offsets(starting_offsets=OI.latest()) == []
    assert offsets(starting_offsets=OI.timestamp(1_000_007)) == [(p, o) for p in (0, 1) for o in (7, 8, 9)]
    assert offsets(stopping_offsets=OI.timestamp(1_000_002)) == [(p, o) for p in (0, 1) for o in (0, 1)]
    assert offsets(starting_offsets=OI.offsets({(topic, 0): 8}, unlisted="latest")) == [(0, 8), (0, 9)]
    assert offsets(starting_offsets=OI.offsets({(topic, 1): 5}, unlisted="earliest"),
                   stopping_offsets=OI.offsets({(topic, 0): 2, (topic, 1): 7})) == [(0, 0), (0, 1), (1, 5), (1, 6)]
    with pytest.raises(fs.FastsourceError, match="no committed offset"):
        offsets(group_id=f"g-{topic}", starting_offsets=OI.committed())
    assert len(offsets(group_id=f"g-{topic}", starting_offsets=OI.committed(reset="earliest"))) == 20
    group = f"g2-{topic}"

    def commit(first, second):
        committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        committer.commit(offsets=[TopicPartition(topic, 0, first), TopicPartition(topic, 1, second)],
                         asynchronous=False)
        committer.close()

    commit(3, 6)
    assert offsets(group_id=group, starting_offsets=OI.committed()) == \
        [(0, o) for o in range(3, 10)] + [(1, o) for o in range(6, 10)]
    commit(3, 6)  # the read above committed the partitions' ends when it finished
    assert offsets(group_id=group, stopping_offsets=OI.committed()) == \
        [(0, o) for o in range(3)] + [(1, o) for o in range(6)]


@pytest.mark.kfake
def test_checkpoint_commits_offsets_to_the_group(bootstrap, make_topic, producer, tmp_path,
                                                 any_transport):
    topic = make_topic(partitions=2)
    fill(producer, topic, 2, 50)
    group = f"g-{topic}"
    source = fs.KafkaSource(bootstrap, topics=[topic], group_id=group,
                            batch_limits=fs.BatchLimits(max_rows=30))
    with source.open(checkpoint_dir=tmp_path) as stream:
        first = next(stream)
        stream.checkpoint()
        expected = {int(split_id.rsplit("-", 1)[1]): state["current_offset"]
                    for split_id, state in stream.metrics()["splits"].items()}
        deadline = time.monotonic() + 20
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            while True:
                committed = {tp.partition: tp.offset for tp in
                             consumer.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)}
                if all(committed[p] == expected[p] for p in expected) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            consumer.close()
    assert first.num_rows > 0
    assert {p: committed[p] for p in expected} == expected


CHILD = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    import fastsource as fs

    bootstrap, topic, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    source = fs.KafkaSource(bootstrap, topics=[topic], batch_limits=fs.BatchLimits(max_rows=1000))
    with source.open(parallelism=2, checkpoint_dir=out / "chk") as stream:
        restored = stream.restored_checkpoint_id or 0
        # Two-phase output: rows written as pending for the checkpoint that will cover them, made
        # visible only once that checkpoint is durable (or found durable after a restart).
        for pending in out.glob("pending-*.json"):
            cid = int(pending.stem.split("-")[1])
            if cid <= restored:
                pending.rename(out / f"committed-{cid}.json")
            else:
                pending.unlink()
        next_id = restored + 1
        for batch in stream:
            rows = list(zip(batch.column("partition").to_pylist(), batch.column("offset").to_pylist()))
            pending = out / f"pending-{next_id}.json"
            pending.write_text(json.dumps(rows))
            cid = stream.checkpoint()
            assert cid == next_id, (cid, next_id)
            pending.rename(out / f"committed-{cid}.json")
            next_id += 1
            time.sleep(0.02)
    (out / "done").write_text("ok")
''')


def test_sigkill_and_restore_yield_every_record_exactly_once(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic(partitions=4)
    fill(producer, topic, 4, 15_000)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / "out"
    out.mkdir()
    kills = 0
    for attempt in range(12):
        child = subprocess.Popen([sys.executable, str(script), bootstrap, topic, str(out)], cwd=tmp_path)
        if attempt < 3:
            time.sleep(1.5 + attempt)
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                kills += 1
            child.wait()
        else:
            assert child.wait(timeout=300) == 0
        if (out / "done").exists():
            break
    assert (out / "done").exists() and kills >= 1
    rows = Counter()
    for committed in out.glob("committed-*.json"):
        rows.update(tuple(r) for r in json.loads(committed.read_text()))
    assert len(rows) == 60_000
    assert set(rows.values()) == {1}, "a record was emitted twice across restarts"
