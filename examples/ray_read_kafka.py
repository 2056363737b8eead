"""A topic into a Ray Dataset with fastsource.ray.read_kafka, the drop-in for ray.data.read_kafka
(needs the extra: pip install 'fastsource[ray]')."""
import pyarrow as pa
import ray

import fastsource as fs
import fastsource.ray as fray
from _sample import bootstrap, sample_topic


def kind_and_amount(table: pa.Table) -> pa.Table:
    value = table["value"].combine_chunks()
    return pa.table({"kind": value.field("kind"), "amount": value.field("amount")})


topic = sample_topic("examples-ray")
ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
ray.data.DataContext.get_current().enable_progress_bars = False
try:
    # Ray's arguments (topics, bootstrap_servers, start_offset, end_offset, ...) plus fastsource's own:
    # a decoded value column, and partitions cut into read tasks of at most 5,000 offsets.
    ds = fray.read_kafka(topic, bootstrap_servers=bootstrap(), start_offset="earliest",
                         end_offset="latest", value_format=fs.formats.Json(),
                         max_records_per_split=5_000)
    events = ds.map_batches(kind_and_amount, batch_format="pyarrow").to_pandas()
    print(len(events), "events")
    print(events.groupby("kind")["amount"].mean())
finally:
    ray.shutdown()
