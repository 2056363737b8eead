"""`fastsource read` does what its arguments say, against a real broker: the output type follows the
file name (CSV, JSON lines) or is refused, `--from committed` never falls back silently and a read
commits what it wrote to its group, the progress line counts records written, and a wrong broker
address fails at once in one sentence (command line and API)."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

import fastsource as fs

CLI = str(Path(sys.executable).parent / "fastsource")


def cli(*args, cwd, timeout=120):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def one_line_error(done: subprocess.CompletedProcess, expected: str) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert expected in done.stderr, done.stderr
    return done.stderr.strip()


def json_events(producer, topic: str, count: int, partitions: int) -> None:
    for i in range(count):
        value = {"id": i, "kind": "view", "user": {"name": f"u{i}"}}
        producer.produce(topic, json.dumps(value).encode(), key=f"k{i}".encode(), partition=i % partitions)
    producer.flush()


def test_csv_and_json_lines_outputs_follow_the_file_name(bootstrap, make_topic, producer, tmp_path):
    """`-o x.csv` / `x.jsonl` / `x.ndjson` write that format (not a Parquet directory of that name)."""
    topic = make_topic(partitions=2)
    json_events(producer, topic, 300, 2)
    done = cli("read", "-b", bootstrap, "-t", topic, "--value-format", "json", "-o", "events.csv",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "events.csv").is_file()
    table = pa_csv.read_csv(tmp_path / "events.csv")
    assert table.column_names == ["topic", "partition", "offset", "timestamp", "timestamp_type", "key",
                                  "value.id", "value.kind", "value.user.name"]
    assert table.num_rows == 300 and sorted(table.column("value.id").to_pylist()) == list(range(300))
    rows = table.to_pylist()
    assert all(r["key"] == f"k{r['value.id']}" and r["value.user.name"] == f"u{r['value.id']}"
               for r in rows)
    for name in ("events.jsonl", "events.ndjson"):
        done = cli("read", "-b", bootstrap, "-t", topic, "-o", name, "--headers", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
        assert len(lines) == 300 and {r["partition"] for r in lines} == {0, 1}
        assert all(json.loads(r["value"])["id"] == int(r["key"][1:]) and r["headers"] == []
                   for r in lines)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left"


def test_unknown_suffixes_and_what_csv_cannot_hold_are_refused(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic()
    json_events(producer, topic, 5, 1)
    refused = one_line_error(cli("read", "-b", bootstrap, "-t", topic, "-o", "events.txt", cwd=tmp_path),
                             "unknown output type .txt")
    for supported in ("*.parquet", "*.arrow", "*.csv", "*.jsonl", "(.ndjson)", "dataset", "--format"):
        assert supported in refused
    assert not (tmp_path / "events.txt").exists()
    one_line_error(cli("read", "-b", bootstrap, "-t", topic, "-o", "h.csv", "--headers", cwd=tmp_path),
                   "--headers")
    done = cli("read", "-b", bootstrap, "-t", topic, "-o", "events.txt", "--format", "jsonl", cwd=tmp_path)
    assert done.returncode == 0 and len((tmp_path / "events.txt").read_text().splitlines()) == 5
    lists = make_topic()
    producer.produce(lists, b'{"tags": ["a", "b"]}')
    raw = make_topic()
    producer.produce(raw, b"text")
    producer.produce(raw, b"\xff\xfe not utf-8")
    producer.flush()
    one_line_error(cli("read", "-b", bootstrap, "-t", lists, "--value-format", "json", "-o", "l.csv",
                       cwd=tmp_path), "column value.tags is a list<item: string>")
    message = one_line_error(cli("read", "-b", bootstrap, "-t", raw, "-o", "r.csv", cwd=tmp_path),
                             f"the value of {raw}[0] at offset 1 is not UTF-8 text")
    assert ".jsonl" in message
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.suffix == ".csv"]


def lag(bootstrap: str, group: str, cwd: Path) -> list[dict]:
    done = cli("lag", "-b", bootstrap, "--group", group, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def offsets_printed(done: subprocess.CompletedProcess) -> list[int]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["offset"] for line in done.stdout.splitlines()]


def test_from_committed_refuses_a_group_without_commits_unless_a_reset_is_given(bootstrap, make_topic,
                                                                                 producer, tmp_path):
    topic = make_topic(partitions=2)
    json_events(producer, topic, 10, 2)
    group = f"g-{topic}"
    refused = one_line_error(cli("read", "-b", bootstrap, "-t", topic, "--from", "committed",
                                 "--group-id", group, cwd=tmp_path), f"group '{group}'")
    assert f"{topic}[0], {topic}[1]" in refused and "--reset earliest|latest" in refused
    latest = cli("read", "-b", bootstrap, "-t", topic, "--from", "committed", "--reset", "latest",
                 "--group-id", group, cwd=tmp_path)
    assert offsets_printed(latest) == []
    one_line_error(cli("read", "-b", bootstrap, "-t", topic, "--reset", "latest", cwd=tmp_path),
                   "--reset applies to --from committed")


def test_a_read_commits_what_it_wrote_so_the_next_resumes_right_after_it(bootstrap, make_topic, producer,
                                                                         tmp_path):
    """As Kafka's console consumer: `--group-id G -c N` commits the N records it printed (not the
    batch it fetched), `--from committed` resumes after them, and a read that ends commits the end."""
    topic = make_topic()
    json_events(producer, topic, 100, 1)
    group = f"g-{topic}"
    args = ["read", "-b", bootstrap, "-t", topic, "--group-id", group, "--from", "committed"]
    first = cli(*args, "--reset", "earliest", "-c", "5", cwd=tmp_path)
    assert offsets_printed(first) == [0, 1, 2, 3, 4]
    assert lag(bootstrap, group, tmp_path) == [
        {"topic": topic, "partition": 0, "committed": 5, "high": 100, "lag": 95}]
    assert offsets_printed(cli(*args, "-c", "3", cwd=tmp_path)) == [5, 6, 7]
    rest = cli(*args, "-o", "rest.parquet", cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr
    assert pq.read_table(tmp_path / "rest.parquet").column("offset").to_pylist() == list(range(8, 100))
    assert lag(bootstrap, group, tmp_path)[0]["committed"] == 100


def test_the_progress_line_counts_the_records_written(bootstrap, make_topic, producer, tmp_path):
    """`-c 3` once ended with "65,536 records" (the batches fetched)."""
    topic = make_topic()
    json_events(producer, topic, 1000, 1)
    done = cli("read", "-b", bootstrap, "-t", topic, "-c", "3", "-o", "three.parquet", "--progress",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    drawn = [line.split("  ")[0] for line in done.stderr.splitlines() if " rec/s " in line]
    assert drawn and drawn[-1] == "3 records", done.stderr
    assert all(int(text.split()[0].replace(",", "")) <= 3 for text in drawn), done.stderr
    assert "3 records -> three.parquet" in done.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]   # closed again when the socket is: nothing listens there


def test_a_wrong_broker_address_fails_at_once_in_one_sentence(tmp_path):
    """A refused connection or a host name that does not resolve is a definite answer: the read fails
    long before the configured request timeout, naming the address and the cause, without a raw
    KafkaError."""
    address = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(fs.BrokerUnavailableError) as caught:
        fs.KafkaSource(address, topics=["t"], request_timeout_s=120).read_all()
    assert time.monotonic() - started < 60
    assert str(caught.value) == (f"cannot connect to the Kafka broker at {address}: connection refused "
                                 "(nothing listens on that port: is the broker running, and is that its "
                                 "address?)")
    with pytest.raises(fs.BrokerUnavailableError, match="nosuchhost.invalid:9092: the host name does not"):
        fs.KafkaSource("nosuchhost.invalid:9092", topics=["t"], request_timeout_s=120).read_all()
    for command in (["read", "-t", "t"], ["topics", "--timeout", "120"]):
        message = one_line_error(cli(*command, "-b", address, cwd=tmp_path), "connection refused")
        assert message.startswith(f"fastsource: error: cannot connect to the Kafka broker at {address}: ")
        assert "KafkaError" not in message
