"""The `fastsource read` command: files equal to read_all(), one-line errors with exit codes, and an
exactly-once dataset directory across SIGKILL and rerun."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pyarrow as pa

import fastsource as fs

CLI = str(Path(sys.executable).parent / "fastsource")


def cli(*args, cwd, timeout=120):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def keyed(table: pa.Table) -> list[tuple]:
    return sorted(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist(),
                      table.column("value").to_pylist()))


def test_read_to_parquet_equals_read_all(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic(partitions=3)
    for i in range(3000):
        producer.produce(topic, f"v{i}".encode(), partition=i % 3)
    producer.flush()
    out = tmp_path / "out.parquet"
    done = cli("read", "-b", bootstrap, "-t", topic, "-o", str(out), "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert keyed(pq.read_table(out)) == keyed(fs.KafkaSource(bootstrap, topics=[topic]).read_all())
    arrow_out = tmp_path / "out.arrow"
    assert cli("read", "-b", bootstrap, "-t", topic, "-o", str(arrow_out), cwd=tmp_path).returncode == 0
    assert pa.ipc.open_file(arrow_out).read_all().num_rows == 3000


def test_bad_input_gives_one_line_errors_and_exit_code_2(bootstrap, make_topic, tmp_path):
    topic = make_topic()
    cases = [
        (["-t", "no-such-topic-q"], "no-such-topic-q"),
        (["-t", topic, "--from", "yesterday-ish"], "bad --from"),
        (["-t", topic, "--to", "0=x"], "bad offset spec"),
        (["-t", topic, "-o", "/proc/no/such/dir/out.parquet"], "/proc/no/such/dir"),
        (["-t", topic, "-X", "no.such.property=1"], "no.such.property"),
    ]
    for args, expected in cases:
        done = cli("read", "-b", bootstrap, *args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert expected in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    for args, expected in [(["-b", "127.0.0.1:9", "-t", topic], "127.0.0.1:9")]:
        done = cli("read", *args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert expected in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def committed_rows(directory: Path) -> Counter:
    rows = Counter()
    for path in sorted(directory.glob("part-*.parquet")):
        table = pq.read_table(path)
        rows.update(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))
    return rows


def test_followed_read_into_a_dataset_survives_sigkill_exactly_once(bootstrap, make_topic, producer,
                                                                    tmp_path):
    topic = make_topic(partitions=2)
    out = tmp_path / "dataset"
    args = [CLI, "read", "-b", bootstrap, "-t", topic, "--to", "follow", "-o", str(out),
            "--checkpoint-interval", "0.2", "--no-progress"]
    for i in range(20_000):
        producer.produce(topic, f"a{i}".encode(), partition=i % 2)
    producer.flush()
    first = subprocess.Popen(args, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not list(out.glob("part-*.parquet")):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.1)
    for i in range(20_000):
        producer.produce(topic, f"b{i}".encode(), partition=i % 2)
    producer.flush()
    first.send_signal(signal.SIGKILL)
    first.wait()
    rerun = subprocess.Popen(args, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while sum(committed_rows(out).values()) < 40_000:
            assert time.monotonic() < deadline, "the rerun did not catch up"
            assert rerun.poll() is None
            time.sleep(0.2)
        time.sleep(1.0)  # a few more checkpoints: nothing may be committed twice
    finally:
        rerun.send_signal(signal.SIGINT)
        rerun.wait(timeout=60)
    rows = committed_rows(out)
    assert len(rows) == 40_000
    assert set(rows.values()) == {1}
