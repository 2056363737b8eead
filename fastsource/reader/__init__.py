"""The reader role: the source reader, its fetcher (a thread owning one librdkafka consumer through the
split reader), the bounded hand-over queue, and the record emitter that decodes batches."""
