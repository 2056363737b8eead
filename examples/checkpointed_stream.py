"""An unbounded, checkpointed loop: rerun it and it resumes after the last checkpoint."""
import time
from pathlib import Path

import fastsource as fs
from _sample import bootstrap, sample_topic

topic = "examples-stream"
if not Path("example-checkpoints").exists():  # first run: make the sample topic
    sample_topic(topic)
source = fs.KafkaSource(bootstrap(), topics=[topic], stopping_offsets=None,
                        value_format=fs.formats.Json())
total = 0
with source.open(parallelism=2, checkpoint_dir="example-checkpoints") as stream:
    print(f"restored from checkpoint {stream.restored_checkpoint_id}")
    last_record = time.monotonic()
    while time.monotonic() - last_record < 2.0:  # stop once the topic is idle for 2 s
        batch = stream.poll(timeout=0.5)
        if batch is None:
            continue
        total += batch.num_rows
        last_record = time.monotonic()
        checkpoint = stream.checkpoint()  # everything handed out so far is now covered
    print(f"read {total:,} records; last checkpoint {checkpoint if total else None}; "
          f"lag {stream.metrics()['pending_records']}")
