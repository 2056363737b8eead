"""Kafka on the generic base (Flink's flink-connector-kafka): the partition split, the admin client,
the enumerator, and the reader's Kafka parts (split reader, record emitter, source reader)."""
