"""The Kafka reader: the split reader (one librdkafka consumer, used by its fetcher's thread), the
record emitter that decodes batches, the Kafka source reader, and `KafkaReaderSpec`, which builds them
where the reader runs."""
