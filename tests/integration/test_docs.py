"""Every code block of the documentation (README.md and docs/*.md) runs here, so the docs cannot
drift from the code. The API reference is built here too, with warnings as errors.

How a page runs:
- its ```python blocks run in page order, in one namespace, in one fresh Python process per page
  (this interpreter), whose working directory is a new empty directory;
- its ```sh blocks run with `bash -euo pipefail` in that directory, in page order between the Python
  blocks, with this interpreter's bin directory first on PATH (`fastsource` and `python` are the
  ones under test);
- blocks in any other language (```text for output samples and commands that must not run, ```json,
  ```toml, a bare ```) are not run; ```bash, ```shell, ```py and ```console are refused (write sh,
  python or text, so that nothing meant to run is skipped by a typo);
- the address `127.0.0.1:19092` becomes the test broker's, and `http://127.0.0.1:18081/apis/ccompat/v7`
  the test registry's.

Markers, HTML comments that GitHub does not show:
- `<!-- docs-test: needs=FIXTURE[,FIXTURE...] -->` anywhere in a page: the page needs those session
  fixtures (`schema_registry` for the registry address). A page that uses the registry address
  without declaring it fails. A fixture this checkout does not define skips the page, naming it.
- `<!-- docs-test: sample-topic=NAME[:RECORDS] -->`: before the page runs, topic NAME is (re)created
  with RECORDS (default 10,000) JSON events over 4 partitions (`fastsource.cli.demo.produce_sample`,
  the demo's events: id, user, kind, amount, ts). For the README, which has no room for set-up code;
  the pages of docs/ create their data in an early block.
- `<!-- docs-test: sample-avro-topic=NAME[:RECORDS] -->`: likewise, the same events (default 1,000)
  written by confluent-kafka's `AvroSerializer` (Confluent's wire format, schema `AVRO_EVENT`
  registered under NAME-value); the page must declare `needs=schema_registry`.
- `<!-- docs-test: not-run: REASON -->` on the line before a block: that block is not run. REASON
  must name the test that covers it instead (the test fails on a marker without one).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
BROKER = "127.0.0.1:19092"
REGISTRY = "http://127.0.0.1:18081/apis/ccompat/v7"
RUN = {"python", "sh"}
REFUSED = {"bash", "shell", "py", "console", "python3", "zsh"}
FENCE = re.compile(r"^```([\w+-]*)\s*$")
MARKER = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")

# The events of `sample-avro-topic`: the demo's JSON events as an Avro record.
AVRO_EVENT = {"type": "record", "name": "Event", "namespace": "fastsource.docs", "fields": [
    {"name": "id", "type": "long"},
    {"name": "user", "type": "long"},
    {"name": "kind", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
]}

# Runs a page's blocks in order: Python in one namespace, sh through bash. Failures name the block.
DRIVER = r"""
import json, subprocess, sys, traceback
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for block in blocks:
    where = f"{block['page']} line {block['line']} ({block['lang']})"
    print(f"--- {where}", flush=True)
    if block["lang"] == "python":
        try:
            exec(compile(block["code"], where, "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            sys.exit(f"FAILED: {where}")
    else:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block["code"]])
        if done.returncode != 0:
            sys.exit(f"FAILED: {where}: exit code {done.returncode}")
"""


def parse(page: Path) -> tuple[list[dict], dict[str, str]]:
    """The page's blocks (language, first line, code, not-run reason) and its page-level markers."""
    blocks, markers = [], {}
    lines = page.read_text().splitlines()
    pending_reason = None
    i = 0
    while i < len(lines):
        for marker in MARKER.findall(lines[i]):
            if marker.startswith("not-run:"):
                pending_reason = marker[len("not-run:"):].strip()
            else:
                key, _, value = marker.partition("=")
                markers[key.strip()] = value.strip()
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        lang, start = match.group(1), i + 1
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        name = page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name
        blocks.append({"page": name, "line": start + 1, "lang": lang,
                       "code": "\n".join(body) + "\n", "not_run": pending_reason})
        pending_reason = None
        i += 1
    return blocks, markers


def produce_avro_sample(bootstrap: str, registry: str, topic: str, records: int) -> None:
    """(Re)create `topic` with 4 partitions and write `records` events to it with confluent-kafka's
    AvroSerializer, which registers `AVRO_EVENT` under the subject `<topic>-value`."""
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from fastsource.cli.demo import produce_sample

    produce_sample(bootstrap, topic, 0, 4)  # (re)creates the topic, writes nothing
    serialize = AvroSerializer(SchemaRegistryClient({"url": registry}), json.dumps(AVRO_EVENT))
    context = SerializationContext(topic, MessageField.VALUE)
    kinds = ["view", "click", "purchase", "signup"]
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(records):
        event = {"id": i, "user": i % 997, "kind": kinds[i % 4], "amount": i / 4,
                 "ts": 1_767_225_600_000 + i}
        producer.produce(topic, serialize(event, context), key=str(event["user"]).encode(),
                         partition=i % 4)
    assert producer.flush(60) == 0


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_page_code_blocks_run(page, bootstrap, request, tmp_path):
    blocks, markers = parse(page)
    refused = [f"line {b['line']}: ```{b['lang']}" for b in blocks if b["lang"] in REFUSED]
    assert not refused, f"{page.name}: write sh, python or text: {refused}"
    unexplained = [b["line"] for b in blocks if b["not_run"] is not None and "test" not in b["not_run"]]
    assert not unexplained, f"{page.name}: a not-run marker must name the test that covers the block (lines {unexplained})"
    needs = [n.strip() for n in markers.get("needs", "").split(",") if n.strip()]
    text = page.read_text()
    assert REGISTRY not in text or "schema_registry" in needs, \
        f"{page.name} uses the registry address: declare <!-- docs-test: needs=schema_registry -->"
    values = {}
    for name in needs:
        try:
            values[name] = request.getfixturevalue(name)
        except pytest.FixtureLookupError:
            pytest.skip(f"{page.name} needs the fixture {name!r}, which this checkout does not define")
    runnable = [b for b in blocks if b["lang"] in RUN and b["not_run"] is None]
    if not runnable:
        return
    for block in runnable:
        block["code"] = block["code"].replace(BROKER, bootstrap)
        if "schema_registry" in values:
            block["code"] = block["code"].replace(REGISTRY, str(values["schema_registry"]))
    if "sample-topic" in markers:
        from fastsource.cli.demo import produce_sample

        name, _, records = markers["sample-topic"].partition(":")
        produce_sample(bootstrap, name, int(records or 10_000), 4)
    if "sample-avro-topic" in markers:
        assert "schema_registry" in values, f"{page.name}: sample-avro-topic needs=schema_registry"
        name, _, records = markers["sample-avro-topic"].partition(":")
        produce_avro_sample(bootstrap, str(values["schema_registry"]), name, int(records or 1_000))
    (tmp_path / "blocks.json").write_text(json.dumps(runnable))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("FASTSOURCE_BROKERS", None)
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "blocks.json")], cwd=work, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=540)
    assert done.returncode == 0, done.stdout[-6000:]


def test_docs_runner_runs_blocks_in_order_and_names_the_failing_one(tmp_path):
    """The runner itself: Python blocks share a namespace, sh blocks see the files Python wrote, and a
    failing block fails the page naming its line."""
    page = tmp_path / "page.md"
    page.write_text("\n".join([
        "```python", "x = 41", "open('out.txt', 'w').write(str(x + 1))", "```",
        "```sh", "test \"$(cat out.txt)\" = 42", "```",
        "```text", "not run at all ((", "```",
        "<!-- docs-test: not-run: covered by test_something -->",
        "```python", "raise SystemExit('must not run')", "```",
        "```python", "assert x == 41", "raise ValueError('boom')", "```", ""]))
    blocks, _ = parse(page)
    assert [(b["lang"], b["not_run"] is not None) for b in blocks] == [
        ("python", False), ("sh", False), ("text", False), ("python", True), ("python", False)]
    runnable = [b for b in blocks if b["lang"] in RUN and b["not_run"] is None]
    (tmp_path / "blocks.json").write_text(json.dumps(runnable))
    done = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "blocks.json")], cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert done.returncode != 0
    assert "FAILED: page.md line 16 (python)" in done.stdout and "boom" in done.stdout
    assert "must not run" not in done.stdout


def test_api_reference_builds_without_warnings(tmp_path):
    """docs/build_api.py renders the API reference from the docstrings with pdoc; any warning (a
    docstring pdoc cannot render, an annotation it cannot resolve) fails the build."""
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "build_api.py"), str(tmp_path / "api")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:]
    index = (tmp_path / "api" / "fastsource.html").read_text()
    assert "KafkaSource" in index
    assert (tmp_path / "api" / "fastsource" / "polars.html").exists()
