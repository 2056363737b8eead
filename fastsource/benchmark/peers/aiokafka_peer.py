"""aiokafka peer: `AIOKafkaConsumer.getmany()` in a loop, messages into lists, lists into Arrow (raw) or
json.loads per message into `Table.from_pylist` (json), like the confluent-kafka baseline.

Usage: python aiokafka_peer.py BOOTSTRAP TOPIC PARTITIONS raw|json (run as a script by the suite).
"""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import readers  # noqa: E402


async def read(bootstrap: str, topic: str, partitions: int, json_values: bool) -> tuple[int, int, float | None]:
    """Read every partition from its beginning to the end offsets seen at the start."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    rows = nbytes = 0
    first = None
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        starts = await consumer.beginning_offsets(assigned)
        pending = {tp for tp in assigned if ends[tp] > starts[tp]}
        while pending:
            fetched = await consumer.getmany(*pending, timeout_ms=100, max_records=65536)
            messages = [m for tp, batch in fetched.items() for m in batch]
            if not messages:
                continue
            first = first or time.perf_counter()
            for tp, batch in fetched.items():
                if batch and batch[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
            values = [m.value for m in messages]
            if json_values:
                rows += readers.json_table(values).num_rows
                nbytes += sum(len(v) for v in values)
            else:
                keys = [m.key for m in messages]
                rows += readers.arrow_batch([m.topic for m in messages], [m.partition for m in messages],
                                            [m.offset for m in messages], [m.timestamp for m in messages],
                                            keys, values).num_rows
                nbytes += sum(len(k or b"") + len(v or b"") for k, v in zip(keys, values))
    finally:
        await consumer.stop()
    return rows, nbytes, first


def main() -> None:
    """Run one read and print the suite's result line."""
    bootstrap, topic, partitions, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    connect = time.perf_counter()
    rows, nbytes, first = asyncio.run(read(bootstrap, topic, partitions, kind == "json"))
    readers.report(rows, nbytes, connect, first)


if __name__ == "__main__":
    main()
