"""The progress line: drawn on terminals only, with records, bytes, rate and lag per topic."""
import io

import pyarrow as pa

from fastsource.cli.progress import Progress

METRICS = {"records": 1500, "bytes": 3_000_000,
           "splits": {"orders-0": {"pending_records": 10}, "orders-1": {"pending_records": 5},
                      "my-topic-2-0": {"pending_records": None}}}


def test_renders_records_written_bytes_and_lag_per_topic():
    """The line counts the records handed to the output, not the stream's fetched records
    (`-c 3` once ended with "65,536 records")."""
    out = io.StringIO()
    progress = Progress(out, enabled=True)
    progress.wrote(pa.record_batch([pa.array(range(1000), pa.int64())], names=["x"]))
    progress.wrote(pa.record_batch([pa.array(range(500), pa.int64())], names=["x"]))
    progress.update(METRICS, force=True)
    line = out.getvalue()
    assert "1,500 records" in line and "0.0 MB" in line
    assert "orders 15" in line and "my-topic-2 0" in line
    progress.update({**METRICS, "records": 65536}, force=True)
    assert out.getvalue().rsplit("\r", 1)[-1].startswith("1,500 records")


def test_silent_when_output_is_not_a_terminal():
    out = io.StringIO()
    progress = Progress(out)
    progress.update(METRICS, force=True)
    progress.finish(METRICS)
    assert out.getvalue() == ""


def test_redraws_at_most_every_interval():
    out = io.StringIO()
    progress = Progress(out, interval=60, enabled=True)
    progress.update(METRICS)
    progress.update(METRICS)
    assert out.getvalue().count("records") == 1
