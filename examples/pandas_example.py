"""A topic into a pandas DataFrame, JSON values decoded to typed columns."""
import pyarrow as pa

import fastsource as fs
from _sample import bootstrap, sample_topic

schema = pa.schema([("id", pa.int64()), ("user", pa.int64()), ("kind", pa.string()),
                    ("amount", pa.float64())])
topic = sample_topic("examples-pandas")
table = fs.KafkaSource(bootstrap(), topics=[topic], value_format=fs.formats.Json(schema)).read_all()
df = table.flatten().to_pandas()
print(df.groupby("value.kind")["value.amount"].sum().round(2))
