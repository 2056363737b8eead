"""The Kafka reader: the split reader (one librdkafka consumer, used by its fetcher's thread), the
record emitter that decodes batches, and the Kafka source reader."""
