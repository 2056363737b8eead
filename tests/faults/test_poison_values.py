"""No record crashes the process: every format over random and adversarial values, and a topic of
poison values read end to end. Decoding runs in a subprocess, so a crash (a segfault in a C++ parser)
fails the test with its exit status instead of killing the test run."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def run_python(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run Python in a fresh process (outside the source tree, so the installed package is used)."""
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                            cwd=HERE.parent.parent.parent)
    assert result.returncode == 0, (f"exit status {result.returncode} (negative: killed by that "
                                    f"signal)\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.mark.timeout(180)
@pytest.mark.parametrize("format_name", ["binary", "string", "json", "json-schema"])
def test_random_and_adversarial_values_never_crash_a_format(format_name):
    result = run_python([str(HERE / "decode_properties.py"), format_name, "50"], timeout=170)
    assert f"{format_name}: ok" in result.stdout


POISON = {
    "null": b"null",
    "deep": b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "bad-utf8": b'{"a": "\xff\xfe"}',
    "truncated": b'{"a": 1',
    "empty": b"",
    "array": b"[1]",
}

READER = textwrap.dedent("""
    import json, sys
    import pyarrow as pa
    import fastsource as fs

    bootstrap, topic, errors, with_schema = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    schema = pa.schema([("a", pa.int64())]) if with_schema else None
    source = fs.KafkaSource(bootstrap, topics=[topic], value_format=fs.formats.Json(schema, errors=errors))
    result = {}
    try:
        with source.open() as stream:
            table = pa.Table.from_batches(list(stream), schema=stream.schema)
            dead = stream.dead_letters()
        result["values"] = list(zip(table.column("offset").to_pylist(), table.column("value").to_pylist()))
        result["dead"] = [{"topic": t, "partition": p, "offset": o, "error": e} for t, p, o, e in zip(
            *(dead.column(c).to_pylist() for c in ("topic", "partition", "offset", "error")))]
    except fs.DecodeError as exc:
        result["error"] = {"topic": exc.topic, "partition": exc.partition, "offset": exc.offset,
                           "message": str(exc)}
    print(json.dumps(result))
""")


@pytest.fixture
def poison_topic(make_topic, producer):
    """A topic whose records alternate good objects and the POISON values: offsets 0, 2, 4, ... are
    good, offset 2k + 1 is the k-th poison value."""
    topic = make_topic()
    for good, (name, value) in enumerate(POISON.items()):
        producer.produce(topic, json.dumps({"a": good}).encode(), key=name.encode())
        producer.produce(topic, value, key=name.encode())
    producer.produce(topic, None, key=b"none")
    producer.flush(30)
    return topic


@pytest.mark.timeout(120)
@pytest.mark.parametrize("with_schema", ["1", "0"])
def test_a_topic_of_poison_values_is_read_without_a_crash(bootstrap, poison_topic, with_schema, tmp_path):
    script = tmp_path / "read_poison.py"
    script.write_text(READER)

    diverted = json.loads(run_python([str(script), bootstrap, poison_topic, "dead_letter", with_schema],
                                     timeout=100).stdout.splitlines()[-1])
    good = {2 * i: {"a": i} for i in range(len(POISON))}
    nulls = {1: None, 9: None, 12: None}  # the JSON null, the empty value and the null Kafka value
    assert dict(diverted["values"]) == {**good, **nulls}
    dead = {d["offset"]: d for d in diverted["dead"]}
    assert sorted(dead) == [3, 5, 7, 11]  # deep, invalid UTF-8, truncated, array
    assert all(d["topic"] == poison_topic and d["partition"] == 0 for d in dead.values())
    assert "max_depth" in dead[3]["error"] and "UTF-8" in dead[5]["error"]

    raised = json.loads(run_python([str(script), bootstrap, poison_topic, "raise", with_schema],
                                   timeout=100).stdout.splitlines()[-1])
    error = raised["error"]
    assert (error["topic"], error["partition"], error["offset"]) == (poison_topic, 0, 3)
    assert f"{poison_topic}[0] offset 3" in error["message"] and "max_depth" in error["message"]
