"""The `fastsource read` command: files equal to read_all(), one-line errors with exit codes, and an
exactly-once dataset directory across SIGKILL and rerun."""
from __future__ import annotations

import json
import os
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


def interruptible() -> None:
    """Ctrl-C's default in the child: a test run started in the background by a shell without job
    control ignores SIGINT, and its children would inherit that (Python then installs no handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_followed_read_into_a_dataset_survives_sigkill_exactly_once(bootstrap, make_topic, producer,
                                                                    tmp_path):
    topic = make_topic(partitions=2)
    out = tmp_path / "dataset"
    args = [CLI, "read", "-b", bootstrap, "-t", topic, "--to", "follow", "-o", str(out),
            "--checkpoint-interval", "0.2", "--no-progress"]
    for i in range(20_000):
        producer.produce(topic, f"a{i}".encode(), partition=i % 2)
    producer.flush()
    first = subprocess.Popen(args, cwd=tmp_path, preexec_fn=interruptible)
    deadline = time.monotonic() + 60
    while not list(out.glob("part-*.parquet")):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.1)
    for i in range(20_000):
        producer.produce(topic, f"b{i}".encode(), partition=i % 2)
    producer.flush()
    first.send_signal(signal.SIGKILL)
    first.wait()
    rerun = subprocess.Popen(args, cwd=tmp_path, preexec_fn=interruptible)
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


def one_line_error(done: subprocess.CompletedProcess, expected: str) -> None:
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def fill(producer, topic: str, count: int, partitions: int, prefix: str = "v") -> None:
    for i in range(count):
        producer.produce(topic, f"{prefix}{i}".encode(), key=f"k{i}".encode(), partition=i % partitions)
    producer.flush()


def test_habits_of_kcat_and_kafka_tools_are_refused_with_one_line(bootstrap, make_topic, tmp_path):
    topic = make_topic()
    cases = [
        (["-o", "beginning"], "--from earliest"),
        (["-o", "end"], "not an offset as in kcat"),
        (["-o", "stored"], "not an offset as in kcat"),
        (["-o", "-10"], "-o ./-10"),
        (["-c", "-5"], "must not be negative"),
        (["--limit", "x"], "invalid count"),
        (["--format", "parquet"], "--format parquet needs an output path"),
        (["--schema", "s.arrow"], "--schema applies to --value-format json"),
        (["--partition", "x"], "bad --partition"),
        (["--errors", "dead-letter", "--value-format", "string"], "--dead-letter-output"),
        (["--errors", "dead-letter", "--dead-letter-output", "d.jsonl"], "binary never fails"),
        (["-p", "0"], "must be at least 1"),
    ]
    for args, expected in cases:
        one_line_error(cli("read", "-b", bootstrap, "-t", topic, *args, cwd=tmp_path), expected)
    assert not any(tmp_path.iterdir()), "a refused read left files behind"
    env = {k: v for k, v in os.environ.items() if k != "FASTSOURCE_BROKERS"}
    done = subprocess.run([CLI, "read", "-t", topic], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env)
    one_line_error(done, "FASTSOURCE_BROKERS")
    one_line_error(cli("read", "-b", bootstrap, "--partition", "0", "--pattern", "x", cwd=tmp_path),
                   "--partition needs -t")


def test_bootstrap_spellings_environment_version_and_module(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic()
    fill(producer, topic, 3, 1)
    for flag in ("-b", "--bootstrap", "--bootstrap-server", "--bootstrap-servers"):
        done = cli("read", flag, bootstrap, "-t", topic, "--value-format", "string", cwd=tmp_path)
        assert done.returncode == 0, (flag, done.stderr)
        assert [json.loads(line)["value"] for line in done.stdout.splitlines()] == ["v0", "v1", "v2"]
    console_consumer = cli("read", "--bootstrap-server", bootstrap, "--topic", topic, "--from-beginning",
                           "--max-messages", "2", cwd=tmp_path)
    assert len(console_consumer.stdout.splitlines()) == 2, console_consumer.stderr
    env = {**os.environ, "FASTSOURCE_BROKERS": bootstrap}
    done = subprocess.run([CLI, "topics", "-t", topic, "-v"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0 and json.loads(done.stdout)["records"] == 3, done.stderr
    version = cli("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"fastsource {fs.__version__}"
    module = subprocess.run([sys.executable, "-m", "fastsource", "--version"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert module.stdout == version.stdout


def test_verbose_after_the_command_shows_the_traceback(bootstrap, tmp_path):
    done = cli("read", "-b", bootstrap, "-t", "no-such-topic-v", "-v", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" in done.stderr and "no-such-topic-v" in done.stderr


def test_console_json_lines_and_table(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic()
    producer.produce(topic, b"text \xc3\xa9", key=b"\xff\x00", headers=[("h", b"x")], timestamp=1_700_000_000_123)
    producer.produce(topic, None, key=None, timestamp=1_700_000_000_124)
    producer.flush()
    done = cli("read", "-b", bootstrap, "-t", topic, "--headers", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first, second = [json.loads(line) for line in done.stdout.splitlines()]
    assert first == {"topic": topic, "partition": 0, "offset": 0, "timestamp": 1_700_000_000_123,
                     "key_base64": "/wA=", "value": "text é", "headers": [{"key": "h", "value": "x"}]}
    assert second["key"] is None and second["value"] is None and second["headers"] == []
    table = cli("read", "-b", bootstrap, "-t", topic, "--console-format", "table", cwd=tmp_path)
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["part", "offset", "timestamp", "(UTC)"]
    assert "2023-11-14 22:13:20.123" in lines[1] and "text é" in lines[1] and len(lines) == 3


def test_a_closed_pipe_ends_the_read_quietly(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic(partitions=2)
    fill(producer, topic, 50_000, 2)
    done = subprocess.run(f"{CLI} read -b {bootstrap} -t {topic} | head -3; exit ${{PIPESTATUS[0]}}",
                          shell=True, executable="/bin/bash", capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and len(done.stdout.splitlines()) == 3


def test_partition_and_limit_with_every_output_kind(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic(partitions=3)
    fill(producer, topic, 3000, 3)
    picked = cli("read", "-b", bootstrap, "-t", topic, "--partition", "0,2", "-o", "p.parquet",
                 cwd=tmp_path)
    assert picked.returncode == 0, picked.stderr
    assert sorted(set(pq.read_table(tmp_path / "p.parquet").column("partition").to_pylist())) == [0, 2]
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 2000
    for out, load in [("l.parquet", lambda p: pq.read_table(p).num_rows),
                      ("l.arrow", lambda p: pa.ipc.open_file(p).read_all().num_rows),
                      ("l-dataset", lambda p: pq.read_table(p).num_rows)]:
        done = cli("read", "-b", bootstrap, "-t", topic, "-c", "1234", "-o", out, "-p", "2",
                   "--batch-size", "1000", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert load(tmp_path / out) == 1234, out
    console = cli("read", "-b", bootstrap, "-t", topic, "--limit", "7", cwd=tmp_path)
    assert len(console.stdout.splitlines()) == 7
    stream = subprocess.run([CLI, "read", "-b", bootstrap, "-t", topic, "-c", "5", "-o", "-"],
                            capture_output=True, timeout=120, cwd=tmp_path)
    assert stream.returncode == 0, stream.stderr
    assert pa.ipc.open_stream(stream.stdout).read_all().num_rows == 5


def test_a_limited_dataset_read_continues_where_the_limit_cut(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic(partitions=3)
    fill(producer, topic, 3000, 3)
    args = ["read", "-b", bootstrap, "-t", topic, "-o", "ds", "--batch-size", "700", "-p", "2"]
    for limit in ("1000", "1000"):
        assert cli(*args, "-c", limit, cwd=tmp_path).returncode == 0
    assert cli(*args, cwd=tmp_path).returncode == 0
    table = pq.read_table(tmp_path / "ds")
    offsets = Counter(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))
    assert len(offsets) == 3000 and set(offsets.values()) == {1}


def test_dead_letters_keep_a_long_export_going(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic()
    for value in (b'{"a": 1}', b"not json", b'{"a": 3}'):
        producer.produce(topic, value)
    producer.flush()
    done = cli("read", "-b", bootstrap, "-t", topic, "--value-format", "json", "--errors", "dead-letter",
               "--dead-letter-output", "bad.jsonl", "-o", "good.parquet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert pq.read_table(tmp_path / "good.parquet").column("offset").to_pylist() == [0, 2]
    (dead,) = [json.loads(line) for line in (tmp_path / "bad.jsonl").read_text().splitlines()]
    assert dead["offset"] == 1 and dead["value"] == "not json" and dead["error"]
    assert "1 undecodable records -> bad.jsonl" in done.stderr
    failing = cli("read", "-b", bootstrap, "-t", topic, "--value-format", "json", cwd=tmp_path)
    one_line_error(failing, "offset 1")


def test_a_dataset_directory_loads_in_polars_pyarrow_and_duckdb(bootstrap, make_topic, producer, tmp_path):
    import duckdb
    import polars as pl
    import pyarrow.dataset as ds

    topic = make_topic(partitions=2)
    fill(producer, topic, 5000, 2)
    done = cli("read", "-b", bootstrap, "-t", topic, "-o", "out", "--value-format", "string",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    assert pl.read_parquet(out).height == 5000
    assert pl.read_parquet(str(out) + "/").select(pl.col("offset")).height == 5000
    assert ds.dataset(out).to_table().num_rows == 5000
    assert duckdb.sql(f"select count(*) from read_parquet('{out}/**/*.parquet')").fetchall()[0][0] == 5000
    assert (tmp_path / ".out.fastsource" / "checkpoints").is_dir()


def test_outputs_are_checked_before_reading(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic()
    fill(producer, topic, 10, 1)
    (tmp_path / "old.parquet").write_text("precious")
    (tmp_path / "adir.parquet").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    (tmp_path / "afile").write_text("x")
    for out, expected in [("old.parquet", "old.parquet exists; add --overwrite"),
                          ("adir.parquet", "adir.parquet is a directory"),
                          ("missing/x.arrow", "directory missing does not exist"),
                          ("missing/ds", "directory missing does not exist"),
                          ("full", "not a fastsource dataset"),
                          ("afile", "afile is a file")]:
        one_line_error(cli("read", "-b", bootstrap, "-t", topic, "-o", out, cwd=tmp_path), expected)
    assert (tmp_path / "old.parquet").read_text() == "precious"
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")], "temporary files left"
    done = cli("read", "-b", bootstrap, "-t", topic, "-o", "old.parquet", "--overwrite", cwd=tmp_path)
    assert done.returncode == 0 and pq.read_table(tmp_path / "old.parquet").num_rows == 10


def test_topics_and_lag(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic(partitions=2)
    for i in range(30):
        producer.produce(topic, b"x", partition=i % 2, timestamp=1_700_000_000_000 + i)
    producer.flush()
    listing = cli("topics", "-b", bootstrap, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = {r["topic"]: r for r in map(json.loads, listing.stdout.splitlines())}
    assert rows[topic] == {"topic": topic, "partitions": 2, "records": 30}
    detail = cli("topics", "-b", bootstrap, "-t", topic, cwd=tmp_path)
    parts = [json.loads(line) for line in detail.stdout.splitlines()]
    assert parts[1] == {"topic": topic, "partition": 1, "low": 0, "high": 15, "records": 15,
                        "first_timestamp": "2023-11-14T22:13:20.001Z",
                        "max_timestamp": "2023-11-14T22:13:20.029Z"}
    table = cli("topics", "-b", bootstrap, "-t", topic, "--console-format", "table", cwd=tmp_path)
    assert table.stdout.splitlines()[0].split() == ["topic", "partition", "low", "high", "records",
                                                    "first_timestamp", "max_timestamp"]
    one_line_error(cli("topics", "-b", bootstrap, "-t", "no-such-topic-l", cwd=tmp_path), "no-such-topic-l")

    from confluent_kafka import Consumer, TopicPartition

    group = f"g-{topic}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 15), TopicPartition(topic, 1, 12)],
                    asynchronous=False)
    consumer.close()
    lag = cli("lag", "-b", bootstrap, "--group", group, cwd=tmp_path)
    assert [json.loads(line) for line in lag.stdout.splitlines()] == [
        {"topic": topic, "partition": 0, "committed": 15, "high": 15, "lag": 0},
        {"topic": topic, "partition": 1, "committed": 12, "high": 15, "lag": 3}]
    for i in range(4):
        producer.produce(topic, b"y", partition=0)
    producer.flush()
    lag = cli("lag", "-b", bootstrap, "-g", group, "--console-format", "table", cwd=tmp_path)
    assert lag.stdout.splitlines()[1].split() == [topic, "0", "15", "19", "4"]
    assert lag.stdout.splitlines()[-1] == "total lag: 7"
    one_line_error(cli("lag", "-b", bootstrap, "-g", "nobody-here", cwd=tmp_path), "no committed offsets")


def test_rerunning_a_dataset_read_appends_exactly_the_new_records(bootstrap, make_topic, producer,
                                                                  tmp_path):
    """Produce N, read to DIR, produce M more, rerun the same command: DIR holds N + M rows, each once
    (a restored bounded read goes up to the stopping point resolved at the rerun)."""
    topic = make_topic(partitions=3)
    fill(producer, topic, 3000, 3, prefix="a")
    args = ["read", "-b", bootstrap, "-t", topic, "-o", "ds", "--no-progress"]
    first = cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    fill(producer, topic, 2000, 3, prefix="b")
    rerun = cli(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "2,000 records" in rerun.stderr
    table = pq.read_table(tmp_path / "ds")
    offsets = Counter(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))
    assert len(offsets) == 5000 and set(offsets.values()) == {1}


def run_on_terminal(args: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str, str]:
    """Run the CLI with standard output on a pseudo-terminal (stderr a pipe): (code, stdout, stderr)."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([CLI, *args], stdout=follower, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env={**os.environ, "COLUMNS": "100"})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    stderr = proc.stderr.read()
    return proc.wait(timeout=timeout), b"".join(chunks).decode(), stderr


def test_a_terminal_gets_a_table_and_no_binary_stream(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic()
    fill(producer, topic, 3, 1)
    code, out, err = run_on_terminal(["read", "-b", bootstrap, "-t", topic], tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["part", "offset"] and len(lines) == 4 and "v2" in lines[3]
    code, out, err = run_on_terminal(["read", "-b", bootstrap, "-t", topic, "-o", "-"], tmp_path)
    assert code == 2 and out == "" and "pipe it" in err and len(err.strip().splitlines()) == 1


def test_sigterm_ends_a_read_cleanly(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic()
    fill(producer, topic, 100, 1)
    proc = subprocess.Popen([CLI, "read", "-b", bootstrap, "-t", topic, "--to", "follow", "-o", "ds",
                             "--checkpoint-interval", "0.2"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "ds").glob("part-*.parquet")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert "Traceback" not in proc.stderr.read()
    state = tmp_path / ".ds.fastsource"
    assert not any((state / "_in-progress").iterdir()) and pq.read_table(tmp_path / "ds").num_rows == 100
