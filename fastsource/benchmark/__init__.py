"""The benchmark suite: fastsource against a C librdkafka consumer and confluent-kafka, side by side.
Run it with `fastsource bench` (quick) or `python bench/run.py` (full); see bench/RESULTS.md."""
