"""The demo job: a local broker, a sample topic of JSON events, one read into Arrow, a summary."""
from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
import time
from typing import Optional

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

DEMO_TOPIC = "fastsource-demo"


def produce_sample(bootstrap: str, topic: str, messages: int, partitions: int) -> None:
    """(Re)create `topic` and fill it with `messages` JSON events spread over its partitions."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic in admin.list_topics(timeout=15).topics:
        admin.delete_topics([topic])[topic].result()
        while topic in admin.list_topics(timeout=15).topics:
            time.sleep(0.2)
    for attempt in range(50):
        try:
            admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
            break
        except Exception:  # deletion still propagating
            if attempt == 49:
                raise
            time.sleep(0.2)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20,
                         "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
    rng = random.Random(7)
    kinds = ["view", "click", "purchase", "signup"]
    base = int(time.time() * 1000)
    for i in range(messages):
        event = {"id": i, "user": rng.randrange(100_000), "kind": kinds[i % 4],
                 "amount": round(rng.random() * 100, 2), "ts": base + i}
        while True:
            try:
                producer.produce(topic, json.dumps(event).encode(), key=str(event["user"]).encode(),
                                 partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 20000 == 0:
            producer.poll(0)
    producer.flush()


def run_demo(messages: int = 1_000_000, partitions: int = 4, port: int = 29192,
             bootstrap: Optional[str] = None) -> None:
    import fastsource as fs
    from fastsource.broker import LocalBroker, download_notice

    broker = None
    data_dir = None
    if bootstrap is None:
        data_dir = tempfile.mkdtemp(prefix="fastsource-demo-")
        broker = LocalBroker(port=port, data_dir=data_dir)
        notice = download_notice()
        if notice:
            print(notice, file=sys.stderr, flush=True)
        print(f"starting a local Kafka broker on 127.0.0.1:{port} ...", flush=True)
        bootstrap = broker.start()
    try:
        print(f"producing {messages:,} JSON events to {DEMO_TOPIC!r} ({partitions} partitions) ...",
              flush=True)
        started = time.perf_counter()
        produce_sample(bootstrap, DEMO_TOPIC, messages, partitions)
        print(f"  produced in {time.perf_counter() - started:.1f} s")
        print("reading it with fastsource into Arrow ...", flush=True)
        source = fs.KafkaSource(bootstrap, topics=[DEMO_TOPIC], value_format=fs.formats.String(),
                                key_format=fs.formats.String())
        started = time.perf_counter()
        table = source.read_all()
        elapsed = time.perf_counter() - started
        print(f"rows: {table.num_rows:,}")
        print(f"time: {elapsed:.2f} s  ({table.num_rows / elapsed:,.0f} rows/s, "
              f"{table.nbytes / elapsed / 1e6:,.0f} MB/s of Arrow data)")
        print(f"schema: {', '.join(f'{f.name}: {f.type}' for f in table.schema)}")
        print("preview:")
        for row in table.sort_by([("partition", "ascending"), ("offset", "ascending")]).slice(0, 5).to_pylist():
            print(f"  {row['topic']}[{row['partition']}] @{row['offset']} key={row['key']} "
                  f"value={row['value']}")
        if table.num_rows != messages:
            raise SystemExit(f"expected {messages} rows, read {table.num_rows}")
    finally:
        if broker is not None:
            broker.stop()
            broker.wipe()
            shutil.rmtree(data_dir, ignore_errors=True)
            print("local broker stopped")
